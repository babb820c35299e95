# spectralkd — set-up and everyday commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test install clean bench

# Exact versions come from constraints.txt (regenerate: $(PY) tools/freeze_constraints.py); pyproject.toml holds ranges.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch/torchvision first, pinned by constraints.txt (a local wheel on the project's machines; a download elsewhere)
	$(PY) -m pip install --quiet -c constraints.txt torch torchvision
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	$(PY) -m pip install --quiet -c constraints.txt --no-deps torchattacks  # robustness tests; see pyproject.toml
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m spectralkd demo $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/bench_spectral.py
	$(PY) benchmarks/bench_distill.py
	$(PY) benchmarks/bench_sr.py

clean:
	rm -rf $(VENV) .pytest_cache
