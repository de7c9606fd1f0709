# Every target creates .venv and installs requirements.txt when needed, so each one works on a
# fresh clone: `make demo` (the main job), `make test` (the test suite), `make lab` (JupyterLab).

# Python 3.11, 3.12 or 3.13 (TensorFlow 2.21 has wheels for these): PYTHON=... if set, otherwise the
# newest of python3.13, python3.12, python3.11 that runs here. Each candidate is run, not just looked
# up, since pyenv puts on PATH shims of installed versions that are not selected, and those fail.
# Only used to create .venv: an existing .venv is kept whatever Python it was made with.
SUPPORTED_PYTHONS := 3.13 3.12 3.11
comma := ,
find_python = $(firstword $(foreach v,$(SUPPORTED_PYTHONS),$(shell python$(v) -c '' >/dev/null 2>&1 && echo python$(v))))
# Searched on first use only (when .venv is created or updated); the $(eval) keeps the answer.
PYTHON ?= $(eval PYTHON := $(find_python))$(PYTHON)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Offline NLTK data beside the project (as in CI); otherwise NLTK downloads into data/nltk_data.
SHARED_NLTK := $(abspath ../shared/nltk_data)
export NLTK_DATA ?= $(if $(wildcard $(SHARED_NLTK)),$(SHARED_NLTK),$(abspath data/nltk_data))
export TF_CPP_MIN_LOG_LEVEL ?= 2
# The COCO detector (YOLOX-Nano) beside the project, as in CI; otherwise the cache or the download.
SHARED_DETECTOR := $(abspath ../shared/models/yolox-nano/yolox_nano.onnx)
ifneq ($(wildcard $(SHARED_DETECTOR)),)
export PHOTO_CAPTIONS_DETECTOR ?= $(SHARED_DETECTOR)
endif
# Caption text for the concept decoder (captions of real photos) and the benchmark photos it must
# never train on, beside the project as in CI; otherwise name your own (README, "Captions").
SHARED_CAPTIONS := $(abspath ../shared/data/coco-val2014-captions-4800/captions_val2014_subset4800.json)
SHARED_FLICKR := $(abspath ../shared/data/flickr8k-text/Flickr8k.token.txt)
ifneq ($(wildcard $(SHARED_CAPTIONS)),)
export PHOTO_CAPTIONS_TEXT ?= $(SHARED_CAPTIONS)$(if $(wildcard $(SHARED_FLICKR)),$(comma)$(SHARED_FLICKR))
export PHOTO_CAPTIONS_EXCLUDE ?= $(abspath ../shared/data/coco-mini-2017)
endif
SHARED_MULTI30K := $(abspath ../shared/data/multi30k-task1)
ifneq ($(wildcard $(SHARED_MULTI30K)/train.fr.gz),)
export PHOTO_CAPTIONS_MULTI30K ?= $(SHARED_MULTI30K)
endif
DATA_DIR ?= data/sample
PYTEST_ARGS ?=

.PHONY: demo test lint lab bench sample clean exiftool

$(STAMP): requirements.txt
	@test -x $(PY) || { [ -n "$(PYTHON)" ] && $(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null; } || { \
	  echo "need Python 3.13, 3.12 or 3.11 to create $(VENV): $(if $(PYTHON),$(PYTHON) is another version or does not run,none of python3.13 python3.12 python3.11 runs here);" \
	  "install one, or name it with PYTHON=/path/to/python3.1x"; exit 1; }
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

lint: $(STAMP)   # ruff, configured in pyproject.toml (CI runs it before the tests)
	$(VENV)/bin/ruff check .

lab: $(STAMP)
	$(VENV)/bin/jupyter lab

bench: $(STAMP)
	$(PY) -m bench

exiftool:   # ExifTool for XMP sidecars (tag-album --xmp): Debian's libimage-exiftool-perl
	.ci/install-exiftool

clean:
	rm -rf outputs runs data/sample
