# kb: two commands on a fresh machine.
#   make run   installs everything, ingests corpus/ and serves on http://127.0.0.1:5000/
#   make test  installs everything (Chromium included) and runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= data
HOST   ?= 127.0.0.1
PORT   ?= 5000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TRANSFORMERS_VERBOSITY := error

PIP_VERSION      := 26.3
PIP_TOOLS_VERSION := 7.6.2

.PHONY: install lock run test browser bench bench-quick clean

# Every dependency at the exact version and hash in requirements.lock, kb itself without
# dependencies of its own. The lock pins torch to the CPU build on this kind's disk (2.13.0+cpu);
# unpinned, pip would pull a multi-GB CUDA build.
$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(BIN)/.installed

# Refresh the lock on purpose, after changing pyproject.toml's dependencies (a few minutes);
# tests/test_install.py fails while the two disagree.
lock: install
	$(BIN)/pip install --quiet pip-tools==$(PIP_TOOLS_VERSION)
	$(BIN)/pip-compile --quiet --extra=test --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
		--no-emit-index-url --no-emit-find-links --output-file=requirements.lock pyproject.toml

run: install
	$(BIN)/kb --data $(DATA) ingest corpus/
	$(BIN)/kb --data $(DATA) serve --host $(HOST) --port $(PORT)

# Debian's Chromium for the browser tests (Playwright drives it; it cannot download its own here)
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: install browser
	$(BIN)/python -m pytest -q

bench-quick: install
	$(BIN)/python -c 'import txtai' 2>/dev/null || $(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench --quick

bench: install
	$(BIN)/python -c 'import txtai' 2>/dev/null || $(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache
