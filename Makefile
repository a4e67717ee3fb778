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

# The submission service on the demo course (released here if needed): prints a student's and
# the instructor's token (new ones each time: the old ones stop working) and the address.
SERVE_DIR := course/demo
.PHONY: serve
serve: data
	$(PY) -m autograder release exercise_08 --course-dir $(SERVE_DIR)/course >/dev/null
	@printf 'lms_id,student_id\n1,demo-student\n2,demo-student-2\n' > $(SERVE_DIR)/roster.csv
	@rm -f $(SERVE_DIR)/service-tokens.csv
	@$(PY) -m autograder tokens exercise_08 --course-dir $(SERVE_DIR)/course \
		--roster $(SERVE_DIR)/roster.csv --out $(SERVE_DIR)/service-tokens.csv \
		--instructor demo-instructor >/dev/null
	@echo "Open http://127.0.0.1:8000 and log in with one of these tokens ($(SERVE_DIR)/service-tokens.csv):"
	@awk -F, 'NR > 1 { printf "  %-10s %-16s %s\n", $$2, $$1, $$3 }' $(SERVE_DIR)/service-tokens.csv
	@echo "The reference zip to upload: $(SERVE_DIR)/cache/reference-*.zip (made by make demo)."
	$(PY) -m autograder serve --course-dir $(SERVE_DIR)/course --host 127.0.0.1 --port 8000
