# Each user-facing target builds .venv from nothing when it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint bench clean venv proto prices

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,openai,langchain]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy --strict src/otel_llm

test: lint
	OTEL_LLM_STRICT=1 $(BIN)/python -m pytest -q tests

demo: $(STAMP)
	$(BIN)/otel-llm demo

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Regenerates the genai-prices answers table after genai-prices is upgraded.
prices: $(STAMP)
	$(BIN)/python -m otel_llm.processing.price_table_build

# Regenerates src/otel_llm/_proto from proto/ with a pinned protoc (its own tool venv).
proto:
	bash tools/proto.sh

clean:
	rm -rf $(VENV) .venv-proto build dist src/*.egg-info
