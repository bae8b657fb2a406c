# rdm — every target installs into a local virtual environment on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# CPU build on these machines; GPU users: make TORCH='torch' (or their CUDA wheel)
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rdm-installed

.PHONY: install test demo clean help
help:
	@echo "make test   - run the test suite"
	@echo "make demo   - run the pipeline on synthetic phantoms"
	@echo "make tables DATA_ROOT=../shared/data - the paper's tables on the real data"

install: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,report]"
	touch $@

test: $(STAMP)
	$(PY) -m pytest tests

clean:
	rm -rf build *.egg-info .pytest_cache
