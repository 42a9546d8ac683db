# The README's two commands: `make demo` and `make test`. Both create .venv on first use.
# torch is pinned to the CPU wheel that lies on this project's machines: an unpinned torch
# would pull a multi-GB CUDA build.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
DEMO := demo

.PHONY: demo test venv clean bench-prepare

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# The main job on an embedded default: a synthetic PAMAP2-format sample -> prepared windows
# -> a ResNet trained for three epochs (per-epoch F1 and single-window latency; batch 32 so
# that the few demo windows still give BatchNorm enough steps) -> its latency per backend.
demo: venv
	$(BIN)/har synth pamap2 $(DEMO)/raw --seconds-per-activity 40 --seed 0 --force
	$(BIN)/har prepare $(DEMO)/raw --out $(DEMO)/prepared --cache-dir $(DEMO)/cache --force
	rm -rf $(DEMO)/run
	$(BIN)/har train --data $(DEMO)/prepared --model resnet --epochs 3 --batch-size 32 --out $(DEMO)/run
	$(BIN)/har bench --checkpoint $(DEMO)/run/best.pt --data $(DEMO)/prepared --runs 100 --batch-sizes 1,32

test: venv
	$(BIN)/python -m pytest -q

# docs/BENCHMARKS.md: full-size synthetic Protocol folder, prepare vs pyarrow vs pandas.
bench-prepare: venv
	$(BIN)/python benchmarks/prepare_bench.py --runs 3

clean:
	rm -rf $(VENV) $(DEMO) *.egg-info .pytest_cache
