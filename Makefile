# The two commands: `make run` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ./data

.PHONY: run test lint bench clean

$(BIN)/postoffice: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,fast]'
	touch $(BIN)/postoffice

run: $(BIN)/postoffice
	$(BIN)/postoffice serve --dev --data $(DATA)

test: $(BIN)/postoffice
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy --strict src/postoffice/store src/postoffice/queue src/postoffice/proto src/postoffice/mailauth src/postoffice/filtering src/postoffice/message src/postoffice/imap/proto src/postoffice/smtp/proto src/postoffice/smtp/inbound_checks.py src/postoffice/pop3 src/postoffice/managesieve src/postoffice/diagnostics src/postoffice/acme src/postoffice/web src/postoffice/setup/autoconfig.py src/postoffice/transfer
	$(BIN)/python -m pytest

lint: $(BIN)/postoffice
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy --strict src/postoffice/store src/postoffice/queue src/postoffice/proto src/postoffice/mailauth src/postoffice/filtering src/postoffice/message src/postoffice/imap/proto src/postoffice/smtp/proto src/postoffice/smtp/inbound_checks.py src/postoffice/pop3 src/postoffice/managesieve src/postoffice/diagnostics src/postoffice/acme src/postoffice/web src/postoffice/setup/autoconfig.py src/postoffice/transfer

bench: $(BIN)/postoffice
	$(BIN)/python bench/import_mbox.py

clean:
	rm -rf $(VENV) build src/*.egg-info
