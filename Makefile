# `make run` starts the console on the live simulator; `make test` runs the whole suite.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
ADDRESS ?= localhost

.PHONY: run test bench lint install node clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --no-package-lock --silent
	touch $@

install: $(VENV)/.installed

node: node_modules/.installed

run: install
	$(PY) -m streamlit run app.py --server.port $(PORT) --server.address $(ADDRESS) \
		--server.headless true --browser.gatherUsageStats false

test: install node
	$(PY) -m pytest

bench: install node
	$(PY) -m bench.all

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) node_modules .pytest_cache
