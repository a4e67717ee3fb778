# The README's commands. Each target sets up what it needs itself.
PYTHON_311 ?= python3.11
VENV       := .venv
PY         := $(VENV)/bin/python
REQ_HASH   := $(shell sha256sum requirements.txt | cut -c1-16)
STAMP      := $(VENV)/.installed-$(REQ_HASH)

.PHONY: setup demo test lint format data bench clean

setup: $(STAMP)

# The stamp is keyed on the hash of requirements.txt: a second run skips the install.
$(STAMP): requirements.txt
	@command -v $(PYTHON_311) >/dev/null || { echo "Python 3.11 is needed: install it and run make again (or set PYTHON_311=/path/to/python3.11)."; exit 1; }
	@test -x $(PY) || $(PYTHON_311) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@rm -f $(VENV)/.installed-*
	@touch $@
	@echo "Environment ready in $(VENV)."

demo: setup
	$(PY) -m autograder demo

data: setup
	$(PY) -m autograder data

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# Three test files at a time (pytest-xdist; each file stays on one worker, so a file's shared
# fixtures run once): most tests wait on subprocesses, sandboxes and time limits.
test: lint
	$(PY) -m pytest -n 3 --dist loadfile --durations=25

# Benchmarks print their figures (they are not timed tests); copy the tables into bench/RESULTS.md.
bench: data
	@for script in bench/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

# Only build output: the demo's course and the student zips. Never course/ itself: a real
# course's collected submissions, gradebook and results live there.
clean:
	rm -rf course/demo dist
