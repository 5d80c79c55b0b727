# Two entry points: `make demo` and `make test`. Both create .venv when it is missing and
# install the project into it (re-installing only when pyproject.toml changes).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint assign check-assignments clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) grader.py demo

test: $(STAMP)
	$(PY) -m ruff check autograder tests bench grader.py
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check autograder tests bench grader.py

assign: $(STAMP)
	$(PY) grader.py assign

check-assignments: $(STAMP)
	$(PY) grader.py assign --check

clean:
	rm -rf out build *.egg-info .pytest_cache
