# The helpline's two commands (see README): `make run` and `make test`. Both set up what they need.
VENV := .venv
BIN := $(VENV)/bin
# Rasa 3.6 runs on Python 3.8-3.10; the machine's default python3 may be newer.
PYTHON310 := $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && echo "$$p" && break; done)

.PHONY: install train run chat eval test lint
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON310)" || { echo "Python 3.10 is needed (Rasa 3.6 runs on 3.8-3.10)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON310) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

train: install
	$(BIN)/helpline train

run: train
	$(BIN)/helpline run

chat: train
	$(BIN)/helpline chat

eval: train
	$(BIN)/helpline eval

lint: install
	$(BIN)/ruff check .

test: lint train
	$(BIN)/rasa data validate --domain build/rasa/domain.yml --data build/rasa/data --config config.yml
	$(BIN)/python -m pytest
