PY ?= .venv/bin/python
PIP ?= $(PY) -m pip
# tests in parallel (pytest-xdist), one worker per core up to 4; a file's tests share a worker,
# so its module fixtures are built once. JOBS=0 runs them in one process.
JOBS ?= auto
XDIST = -n $(JOBS) --maxprocesses=4 --dist loadfile

.PHONY: install install-gpu run test test-fast test-lowest lint format clean

install:            ## CPU install into .venv (torch pinned to the CPU wheel)
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -c constraints-cpu.txt -e ".[dev]"

install-gpu:        ## GPU install: your CUDA torch must already be in the venv
	$(PIP) install -e ".[dev]"

run:                ## train + test the paper's network on the phantom (CPU profile)
	$(PY) -m hemato.run model=ours

test:               ## the full test suite (what CI runs)
	$(PY) -m pytest -q $(XDIST)

test-fast:          ## skip the slow end-to-end tests
	$(PY) -m pytest -q $(XDIST) -m "not slow"

test-lowest:        ## the fast tests against the lowest dependency versions pyproject allows (CI runs it)
	test -x .venv-lowest/bin/python || python3 -m venv .venv-lowest
	.venv-lowest/bin/python -m pip install -q --upgrade pip
	.venv-lowest/bin/python -m pip install -q -c constraints-cpu.txt -c constraints-lowest.txt -e ".[dev]"
	.venv-lowest/bin/python -m pytest -q $(XDIST) -m "not slow" -p no:cacheprovider

lint:               ## ruff check + ruff format --check (CI runs it)
	$(PY) -m ruff check hemato tests
	$(PY) -m ruff format --check hemato tests

format:
	$(PY) -m ruff format hemato tests

clean:
	rm -rf runs .cache .pytest_cache .ruff_cache

.PHONY: bench
# the newest checkpoint of the default run (python -m hemato.run model=ours), if there is one
CKPT ?= $(lastword $(sort $(wildcard runs/cpu/*_ours/checkpoints/best.ckpt)))
bench:              ## benchmarks (~6 min here): table on screen + reports/bench.json; CKPT=path adds a trained model
	$(PY) -m hemato.bench --paper --json reports/bench.json $(if $(CKPT),--checkpoint $(CKPT))

.PHONY: tables report
tables:             ## Tables 1-7 + Figures 2-6 on the phantom, CPU-sized (~50 min here), -> reports/cpu/
	PY=$(PY) experiments/make_tables.sh

report:             ## report from existing runs: make report RUNS="runs/table1/multirun_X runs/ablation/multirun_Y"
	$(PY) -m hemato.report $(RUNS) --out reports/latest
