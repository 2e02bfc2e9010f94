# The two commands: `make demo` (the main job) and `make test` (what CI runs).
# Both set up .venv first (idempotent: seconds when nothing changed).
SHELL := /bin/bash
ENV := source scripts/dev_env.sh &&
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: setup demo test lint colcon bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@$(ENV) python scripts/demo.py $(DEMO_ARGS)

test: setup
	@$(ENV) bash scripts/test.sh $(PYTEST_ARGS)

lint: setup
	@$(ENV) ruff check . && mypy

colcon: setup
	@$(ENV) bash scripts/colcon_check.sh

bench: setup
	@$(ENV) python bench/run_all.py

clean:
	rm -rf build install log .pytest_cache .mypy_cache .ruff_cache
