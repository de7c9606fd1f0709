# Every target creates .venv and installs requirements.txt when needed, so each one works on a
# fresh clone: `make demo` (the main job), `make test` (the test suite), `make lab` (JupyterLab).

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Offline NLTK data beside the project (as in CI); otherwise NLTK downloads into data/nltk_data.
SHARED_NLTK := $(abspath ../shared/nltk_data)
export NLTK_DATA ?= $(if $(wildcard $(SHARED_NLTK)),$(SHARED_NLTK),$(abspath data/nltk_data))
export TF_CPP_MIN_LOG_LEVEL ?= 2
DATA_DIR ?= data/sample
PYTEST_ARGS ?=

.PHONY: demo test lab bench sample clean

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=... to another 3.11 interpreter)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

sample: $(STAMP)
	$(PY) -m helpers make-sample --out data/sample

demo: $(STAMP)
	$(PY) -m helpers.demo --data-dir $(DATA_DIR)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf outputs runs data/sample
