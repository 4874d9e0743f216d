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

.PHONY: install run test browser bench bench-quick clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: its CPU build is on disk; unpinned, pip would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

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
