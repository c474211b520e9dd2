# popeval: two commands for a newcomer (see README.md)
#   make demo   set everything up and run the whole study on the demo data
#   make test   run the tests (CI runs exactly this through .ci/run)

SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy
export UV_COMPILE_BYTECODE := 1
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(PYTHON) -m uv

.PHONY: setup system-deps demo test lint bench r-references clean

## Install uv (pinned), the locked Python environment, and the system tools the reports need.
setup: system-deps
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --quiet

## pdftotext (poppler-utils) checks the rendered PDF in the tests; installed from Debian when missing.
system-deps:
	@if ! command -v pdftotext >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils) >/dev/null 2>&1 \
	      || echo "note: could not install poppler-utils; PDF text checks will be skipped"; \
	  else echo "note: pdftotext not found; PDF text checks will be skipped"; fi; \
	fi

## Generate the demo study and run the whole pipeline on it, ending with the report's path.
## The middle step is the demo's stand-in for the coders and reconcilers of the POP sample (a real
## study's first `popeval run` writes blank coding sheets instead; see README.md, "Reading the POPs").
demo: setup
	$(UV) run --frozen popeval demo
	$(UV) run --frozen popeval plans simulate --config studies/demo.toml --truth data_raw/demo/truth --complete
	$(UV) run --frozen popeval run --config studies/demo.toml

## The test suite (what CI runs), on all cores: each test file whole in one worker (pytest-xdist).
test: setup
	$(UV) run --frozen pytest -q -n auto --dist loadfile --no-loadscope-reorder

lint: setup
	$(UV) run --frozen ruff check survey analysis tests bench

## Benchmarks side by side with R and Python peers (writes bench/results/).
bench: setup
	$(UV) sync --frozen --group bench --quiet
	for b in bench/bench_*.py; do $(UV) run --frozen python $$b || exit 1; done

## Regenerate the R reference values (needs Debian's r-base-core and r-cran-* packages).
r-references:
	for r in tests/r/*.R; do Rscript $$r || exit 1; done

clean:
	rm -rf data_derived reports/_output bench/_work
