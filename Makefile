PYTHON ?= python3

.PHONY: install test test-slow demo lint-rtl clean

install:
	$(PYTHON) -m pip install -e ".[dev]"

test:
	$(PYTHON) -m pytest -q

test-slow:
	$(PYTHON) -m pytest -q -m slow

demo:
	spikeforge demo --out runs/demo

lint-rtl:
	$(PYTHON) -m pytest -q tests/hw/test_export.py -k "lint or waiver"

clean:
	rm -rf build sim_build runs .pytest_cache .hypothesis
