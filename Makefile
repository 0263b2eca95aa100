# Two commands for learners:  make lab   (open the course)   make test   (run every test)
#
# Both use the active virtual environment or conda env if there is one, else .venv/ here,
# and install whatever is missing first, with the versions of constraints.txt (see
# scripts/install.sh). For people working on the course:
#
#   make check        the fast lane: library and kernel tests, no notebooks (a few minutes)
#   make test-latest  make test in .venv-latest/, made afresh with the newest releases
#                     pyproject.toml allows instead of the lock: finds drift before learners do
#   make lock         re-resolve constraints.txt to the newest releases (then run make test)
#   make release      regenerate notebooks/ from solutions/

ifdef VIRTUAL_ENV
  PY := $(VIRTUAL_ENV)/bin/python
else ifdef CONDA_PREFIX
  PY := $(CONDA_PREFIX)/bin/python
else
  PY := $(CURDIR)/.venv/bin/python
endif
# Test processes (pytest-xdist); notebooks run in parallel, each worker with its share of the cores.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -ra -n $(TEST_WORKERS) --dist loadgroup

.PHONY: lab test check test-latest lock install prepare release eval

lab: install
	$(PY) -m course_lib.cli lab

test: install prepare
	QUANT_COURSE_BUDGET=$${QUANT_COURSE_BUDGET:-ci} $(PYTEST) $(PYTEST_ARGS)

check: install prepare
	QUANT_COURSE_BUDGET=$${QUANT_COURSE_BUDGET:-ci} $(PYTEST) -m "not course" $(PYTEST_ARGS)

test-latest:
	rm -rf "$(CURDIR)/.venv-latest"
	QUANT_COURSE_LOCK=latest $(MAKE) test PY="$(CURDIR)/.venv-latest/bin/python"

lock: install
	@bash scripts/lock.sh "$(PY)"

install:
	@bash scripts/install.sh "$(PY)"

prepare: install
	$(PY) -m course_lib.cli prepare

eval: install
	$(PY) -m course_lib.cli eval --corpus wiki code

release: install
	$(PY) -m course_lib.cli release
