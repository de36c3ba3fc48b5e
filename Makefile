# The two commands of the README: `make demo` and `make test`. Both set up what they need.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint fuzz bench clean-venv

demo: $(STAMP)
	$(BIN)/smarttrees demo

test: $(STAMP)
	.ci/system-packages.sh test
	$(BIN)/ruff check smarttrees etl barcodes gis_api tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -n 2 --dist loadfile

# Schemathesis deeper than the suite's run: every phase (coverage too), 30 examples per
# operation, no time limit (tens of minutes on two cores). Exits non-zero on any failure or 5xx.
fuzz: $(STAMP)
	FUZZ=deep $(BIN)/pytest -q -s -p no:cacheprovider tests/test_api_schemathesis.py -k finds_nothing

lint: $(STAMP)
	$(BIN)/ruff check smarttrees etl barcodes gis_api tests bench
	$(BIN)/mypy

# The virtual environment is rebuilt when pyproject.toml changes.
$(STAMP): pyproject.toml
	.ci/system-packages.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
