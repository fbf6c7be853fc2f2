# Two commands matter: `make dev` (serve locally) and `make test` (the whole suite).
# Both create .venv when missing and install requirements-dev.txt; nothing else is needed.
# The interpreter .venv is made from: the first of python3.12, python3.11, python3 that starts and
# is 3.11+, by its real path. Merely being on PATH is not enough: .python-version pins 3.12 for
# Vercel, and pyenv reads it, so where pyenv has no 3.12 its python3.12 shim fails to start.
# Choose another with `make setup PYTHON=/path/to/python`.
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
	$$p -c 'import sys; assert sys.version_info >= (3, 11); print(sys.executable)' 2>/dev/null && exit 0; \
	done; echo python3)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup dev test lint bench bench-full load node-deps client-types clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# put the project root on the venv's path so `python api/<name>.py` can import lib/
	$(PY) -c "import site, pathlib; pathlib.Path(site.getsitepackages()[0], 'bundle-root.pth').write_text('$(CURDIR)\n')"
	touch $@

setup: $(VENV)/.installed

# Node packages for the tests that need them (each folder installs exactly its lockfile; npm's cache
# makes a second install fast): tests/node, the AI SDK's own stream parser and puppeteer-core;
# clients/typescript, its type generator and tsc; examples/nextjs, the example app (Next.js, the AI
# SDK and the client). Without npm those tests are skipped and say so.
NPM_CI := npm ci --no-audit --no-fund --loglevel=error

%/node_modules/.installed: %/package.json %/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $* && $(NPM_CI) && touch node_modules/.installed; \
	else echo "npm not found: the tests that need $* will be skipped"; fi

node-deps: tests/node/node_modules/.installed clients/typescript/node_modules/.installed \
	examples/nextjs/node_modules/.installed

# examples/nextjs installs a copy of the client (install-links): a changed client means a new copy.
examples/nextjs/node_modules/.installed: clients/typescript/package.json clients/typescript/index.ts \
	clients/typescript/schema.d.ts

# After a model changes: openapi.json and the TypeScript types generated from it.
client-types: setup clients/typescript/node_modules/.installed
	$(PY) -m lib.cli openapi > openapi.json
	cd clients/typescript && npm run --silent generate

# The command line reads .env itself (variables already set win), as Next.js does for its own.
# The port is PORT (from the environment, `make dev PORT=9000` or .env), else 8000.
dev: setup
	$(PY) -m lib.cli migrate && $(PY) -m lib.cli serve $(if $(PORT),--port $(PORT))

test: setup node-deps
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check api lib tests bench

bench: setup
	$(PY) bench/run.py

bench-full: setup
	$(PY) bench/run.py --full $(BENCH_FLAGS)

# 200 concurrent clients against one local server for 60 s (loopback, offline providers), recorded
# in bench/RESULTS.md; `.venv/bin/python bench/load.py --seconds 10 --concurrency 50` only prints.
load: setup
	$(PY) bench/run.py --only load

clean:
	rm -rf $(VENV) .pytest_cache tests/node/node_modules clients/typescript/node_modules \
		examples/nextjs/node_modules examples/nextjs/.next
