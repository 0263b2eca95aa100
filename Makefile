# Two commands for learners:  make lab   (open the course)   make test   (run every test)
#
# Both use the active virtual environment or conda env if there is one, else .venv/ here,
# and install whatever is missing first (see scripts/install.sh).

ifdef VIRTUAL_ENV
  PY := $(VIRTUAL_ENV)/bin/python
else ifdef CONDA_PREFIX
  PY := $(CONDA_PREFIX)/bin/python
else
  PY := $(CURDIR)/.venv/bin/python
endif

.PHONY: lab test install prepare release eval

lab: install
	$(PY) -m course_lib.cli lab

test: install prepare
	QUANT_COURSE_BUDGET=$${QUANT_COURSE_BUDGET:-ci} $(PY) -m pytest -ra $(PYTEST_ARGS)

install:
	@bash scripts/install.sh "$(PY)"

prepare: install
	$(PY) -m course_lib.cli prepare

eval: install
	$(PY) -m course_lib.cli eval --corpus wiki code

release: install
	$(PY) -m course_lib.cli release
