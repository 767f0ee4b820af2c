# Two commands do everything on a fresh machine:
#   make run   — the whole service on embedded defaults (SQLite, filesystem broker, local mail catcher)
#   make test  — the test suite (SQLite by default; TEST_DATABASE_URL/TEST_REDIS_URL for PostgreSQL/Redis)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-deps install lock clean translations extract-messages bench audit

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	touch $(STAMP)

# axe-core, which the browser tests run in Chromium (tests/browser/)
AXE := node_modules/axe-core/axe.min.js
$(AXE): package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch $(AXE)

install: $(STAMP) translations

# Each catalogue is compiled when its .po changes (so two `make test` at once never write the same .mo).
CATALOGUES := $(patsubst %.po,%.mo,$(wildcard survey/translations/*/LC_MESSAGES/messages.po))
translations: $(CATALOGUES)
%.mo: %.po $(STAMP)
	$(BIN)/pybabel compile --statistics -i $< -o $@

# Re-extract every message after changing texts; then translate the new ones in survey/translations/*.
extract-messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -o messages.pot .
	$(BIN)/pybabel update -i messages.pot -d survey/translations
	rm messages.pot

run: install
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/flask --app wsgi demo setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile

test-deps: install $(AXE)

test: test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks against baselines measured in the same run (PostgreSQL and Redis on this
# machine, see bench/__init__.py); the full size writes bench/RESULTS.md.
BENCH_SIZE ?= full
bench: install
	$(BIN)/python -m bench --size $(BENCH_SIZE) $(if $(filter full,$(BENCH_SIZE)),--results bench/RESULTS.md)

# Supply chain: bandit fails on a high-severity finding in our code; pip-audit fails on a
# known vulnerability in any pin of requirements.lock (it asks PyPI's advisory data; a pin it
# could not look up is named, and said loudly: that is not a clean bill of health).
audit: $(STAMP)
	$(BIN)/bandit -q -r survey workflows bench --severity-level high
	@status=0; $(BIN)/pip-audit -r requirements.lock --require-hashes --disable-pip --progress-spinner off \
	  > $(VENV)/pip-audit.log 2>&1 || status=$$?; cat $(VENV)/pip-audit.log; \
	if grep -q "could not be audited" $(VENV)/pip-audit.log; then echo "WARNING: pip-audit could not look up \
	every pin (above): its advisory service (pypi.org's JSON API) did not answer from this machine."; fi; exit $$status

# Re-pin every dependency (with hashes) after editing pyproject.toml.
lock:
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --extra test --strip-extras -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) instance
