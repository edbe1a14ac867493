# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test install lint typecheck clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# torch first: the CPU wheel of 2.13.0 is on this machine; a bare `torch`
# requirement would otherwise pull a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[dev,distributed]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	MPLBACKEND=Agg $(VENV)/bin/metarl demo

# the type checker first: strict on metarl/core, metarl/sampling and the agent contract ([tool.mypy])
test: $(STAMP)
	$(VENV)/bin/mypy
	MPLBACKEND=Agg $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check metarl tests

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache
