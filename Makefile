# rdm — every target installs into a local virtual environment on first use.
#   make demo                          the whole pipeline on synthetic phantoms (minutes, CPU)
#   make tables DATA_ROOT=../shared/data   every table and figure from the real data
#   make test                          the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# torch: on a machine without an NVIDIA GPU, the CPU wheel from PyTorch's CPU wheel index (no CUDA
# libraries: a venv of ~1 GB instead of ~6); with one (nvidia-smi answers), the default wheel, which
# carries CUDA. When the CPU index cannot be reached, pip's own indexes and wheel folders are used.
# Override either way: make install TORCH_INDEX= (default wheel) or TORCH_INDEX=<a CUDA wheel index>.
TORCH ?= torch==2.13.0
TORCHATTACKS ?= torchattacks==3.5.1
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
HAVE_GPU = $(shell nvidia-smi -L 2>/dev/null | head -1)
CPU_INDEX_UP = $(shell $(PYTHON) -c "import socket; socket.getaddrinfo('download.pytorch.org', 443)" 2>/dev/null && echo up)
TORCH_INDEX ?= $(if $(HAVE_GPU),,$(if $(CPU_INDEX_UP),$(TORCH_CPU_INDEX)))
PY := $(VENV)/bin/python
RDM := $(VENV)/bin/
STAMP := $(VENV)/.rdm-installed
# NO_VENV=1: use the Python already set up on this machine (a GPU node with its own CUDA torch, after
# `$(PYTHON) -m pip install --no-deps -e .`): no virtual environment is made, the rdm-* commands are
# found on PATH, e.g.  make tables NO_VENV=1 PYTHON=python3 DEVICE=cuda JOBS=4 MODALITIES=brain
ifdef NO_VENV
PY := $(PYTHON)
RDM :=
STAMP :=
endif

GRID ?= experiments/grid.toml
DATA_ROOT ?= ../shared/data
SEED ?= 0
# every model, crafted set and evaluation is repeated for seeds SEED … SEED+SEEDS-1 (the split is
# SEED's, shared); the report gives each cell's mean and 95 % interval over them
SEEDS ?= 3
DEMO_SEEDS ?= 1
DEVICE ?= auto
SUBSET_N ?= 300
MODE ?= tables
# the part of the grid `make tables` runs: core (the paper's tables and the claims, [tiers.core] of the
# grid) or full (every cell); `python -m rdm.pipeline.plan --cost --tier core` estimates it per stage
TIER ?= core
OUT ?= work
RESULTS ?= results
TRAIN_FLAGS ?=
DEMO_OUT ?= demo/work
DEMO_RESULTS ?= demo/results
DEMO_TRAIN_FLAGS ?= --epochs 8 --batch-size 32
DEMO_N ?= 240
DEMO_SUBSET_N ?= 24
JOBS ?= 2
# torch threads per job: the cores shared out between the JOBS parallel steps. Two steps of two threads
# each on two cores train about 1.4x slower than two steps of one thread (OpenMP threads contend).
JOB_THREADS ?= $(shell n=$$(( $$(nproc 2>/dev/null || echo 1) / $(JOBS) )); [ $$n -ge 1 ] && echo $$n || echo 1)
THREADS_ENV = RDM_THREADS=$${RDM_THREADS:-$(JOB_THREADS)}
# the modalities `make tables` runs (empty: every one in the grid); their data folders (the grid's
# `source`) must exist under DATA_ROOT
MODALITIES ?=
DEMO_MODALITIES ?= lung
TIMED = $(PY) -m rdm.pipeline.grid timed $(OUT)/timings.jsonl

.PHONY: help install test demo tables report bench clean
help:
	@echo "make demo                          - the pipeline on synthetic lung phantoms (DEMO_MODALITIES=\"lung brain leukemia\" for all)"
	@echo "make tables DATA_ROOT=../shared/data - the paper's tables and figures from the real data"
	@echo "make test                          - the test suite"
	@echo "make bench                         - attack and training throughput (BENCH_DEVICE=cuda: the GPU section)"

install: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@echo "installing $(TORCH) $(if $(TORCH_INDEX),from $(TORCH_INDEX) (CPU only; for a GPU: make install TORCH_INDEX=),$(if $(HAVE_GPU),with its CUDA libraries (a GPU was found),from pip's own indexes (no GPU; $(TORCH_CPU_INDEX) unreachable)))" >&2
	$(PY) -m pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e ".[test,report]"
	# the reference the notebook API's tests compare against; without its dependencies, whose torchvision
	# pin would replace the torch above (tests/api/test_notebook.py skips those checks without it)
	$(PY) -m pip install -q --no-deps "$(TORCHATTACKS)"
	touch $@

# The suite runs on every core (pytest-xdist, one worker per core; TEST_JOBS=0: no workers), a test
# file per worker, so each file's module fixtures (the small grids test_report and test_slurm build) are
# built once. A Python without xdist (NO_VENV=1 on a node that lacks it) runs the suite in one process.
TEST_JOBS ?= auto
test: $(STAMP)
	@$(PY) -m compileall -q lib tools >/dev/null   # bytecode once: the suite starts hundreds of commands
	$(PY) -m pytest $$($(PY) -c "import xdist" 2>/dev/null && echo "-n $(TEST_JOBS) --dist loadfile") tests

# ---------------------------------------------------------------- the experiment graph
# The grid file is turned into make rules (targets = the files the commands write), so
# only out-of-date cells rebuild, `make -j2 tables` runs branches in parallel and an
# interrupted run resumes.
# RUNNER=pool: `make tables`/`make demo` run the same steps with `python -m rdm.pipeline.grid run`: JOBS long-lived
# worker processes that import torch once (make starts a process per step); same files, skips and
# timings.jsonl. make stays the default.
RUNNER ?= make
POOL = $(PY) -m rdm.pipeline.grid run --jobs $(JOBS) --grid $(GRID) --seed $(SEED)
POOL_VARS = PY=$(PY) RDM=$(RDM) DEVICE=$(DEVICE) DATA_ROOT=$(DATA_ROOT) DEMO_N=$(DEMO_N)

tables: $(STAMP)
	@$(PY) -m rdm.pipeline.grid check-data --grid $(GRID) --data-root $(DATA_ROOT) $(addprefix --modality ,$(MODALITIES))
	@mkdir -p $(OUT)
ifeq ($(RUNNER),pool)
	$(THREADS_ENV) $(POOL) --mode tables --tier $(TIER) --seeds $(SEEDS) $(addprefix --modality ,$(MODALITIES)) --results $(RESULTS) \
	  $(POOL_VARS) OUT=$(OUT) SUBSET_N=$(SUBSET_N) TRAIN_FLAGS="$(TRAIN_FLAGS)"
else
	@$(PY) -m rdm.pipeline.grid makefile --mode tables --tier $(TIER) --grid $(GRID) --seed $(SEED) --seeds $(SEEDS) $(addprefix --modality ,$(MODALITIES)) > $(OUT)/grid.mk
	$(THREADS_ENV) $(MAKE) --no-print-directory -j$(JOBS) MODE=tables TIER=$(TIER) GRID_MK=$(OUT)/grid.mk OUT=$(OUT) RESULTS=$(RESULTS) SEEDS=$(SEEDS) report
endif

demo: $(STAMP)
	@mkdir -p $(DEMO_OUT)
ifeq ($(RUNNER),pool)
	$(THREADS_ENV) $(POOL) --mode demo --seeds $(DEMO_SEEDS) $(addprefix --modality ,$(DEMO_MODALITIES)) \
	  --results $(DEMO_RESULTS) $(POOL_VARS) OUT=$(DEMO_OUT) SUBSET_N=$(DEMO_SUBSET_N) TRAIN_FLAGS="$(DEMO_TRAIN_FLAGS)"
else
	@$(PY) -m rdm.pipeline.grid makefile --mode demo --grid $(GRID) --seed $(SEED) --seeds $(DEMO_SEEDS) $(addprefix --modality ,$(DEMO_MODALITIES)) > $(DEMO_OUT)/grid.mk
	$(THREADS_ENV) $(MAKE) --no-print-directory -j$(JOBS) MODE=demo GRID_MK=$(DEMO_OUT)/grid.mk OUT=$(DEMO_OUT) RESULTS=$(DEMO_RESULTS) SEEDS=$(DEMO_SEEDS) \
	  TRAIN_FLAGS="$(DEMO_TRAIN_FLAGS)" SUBSET_N=$(DEMO_SUBSET_N) report
endif
	@echo "demo report: $(DEMO_RESULTS)/REPORT.md" >&2

ifdef GRID_MK
include $(GRID_MK)
report: $(RESULTS)/REPORT.md
$(RESULTS)/REPORT.md: $(GRID_METRICS) $(GRID)
	$(TIMED) report -- $(PY) -m rdm.report --grid $(GRID) --work $(OUT) --results $(RESULTS) --mode $(MODE) --tier $(if $(filter demo,$(MODE)),full,$(TIER)) --seed $(SEED) --seeds $(SEEDS)
endif

# the comparison libraries are installed for the benchmark only, never pulling another torch
BENCH_LIBS ?= torchattacks==3.5.1 adversarial-robustness-toolbox==1.20.1 six==1.17.0 tqdm==4.70.1
BENCH_FLAGS ?=
# BENCH_DEVICE=cuda: the GPU section (bench/bench-cuda.json; skipped with a message without CUDA)
BENCH_DEVICE ?= cpu
bench: $(STAMP)
	$(PY) -m pip install -q --no-deps $(BENCH_LIBS)
	$(PY) tests/bench/bench.py --device $(BENCH_DEVICE) $(BENCH_FLAGS)

clean:
	rm -rf build *.egg-info .pytest_cache demo
