"""The `har` group: `har --help` walks the main flow, every command in its order; `make demo`
runs commands that exist."""

from __future__ import annotations

import itertools
import shlex
from pathlib import Path

from cli import FLOW, cli


def test_help_lists_every_command_in_the_main_flow_order(run_cli):
    code, out, _ = run_cli("--help")
    assert code == 0
    assert set(FLOW) == set(cli.commands)
    listed = [line.split()[0] for line in out[out.index("Commands:"):].splitlines()[1:]
              if line.strip()]
    assert listed == list(FLOW)
    flow = out[:out.index("Options:")]
    positions = [flow.index(f"har {name}") for name in FLOW]
    assert positions == sorted(positions), flow


def _make_recipe(target: str):
    """The recipe lines of ``target`` in the Makefile, with $(BIN)/$(DEMO) expanded."""
    text = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    lines = text[text.index(f"\n{target}:"):].splitlines()[2:]
    recipe = [line.strip() for line in itertools.takewhile(lambda s: s.startswith("\t"), lines)]
    return [line.replace("$(BIN)", ".venv/bin").replace("$(DEMO)", "demo") for line in recipe]


def test_make_demo_ends_with_har_bench_on_the_demo_checkpoint():
    last = shlex.split(_make_recipe("demo")[-1])
    assert last[:2] == [".venv/bin/har", "bench"]
    args = last[2:]
    assert args[args.index("--checkpoint") + 1] == "demo/run/best.pt"
    assert args[args.index("--data") + 1] == "demo/prepared"
    cli.commands["bench"].make_context("bench", args)       # every option exists and parses


def test_train_help_shows_the_defaults_of_configs_train_toml(run_cli):
    """The one place for a default: `har train --help` shows configs/train.toml's values."""
    import tomllib

    from harkit.config import default_config_path

    table = tomllib.loads(default_config_path("train").read_text())["train"]
    ctx = cli.commands["train"].make_context("train", [])
    for name in ("epochs", "batch_size", "lr", "weight_decay", "lr_gamma", "latency_runs", "model",
                 "data"):
        param = next(p for p in cli.commands["train"].params if p.name == name)
        assert param.get_default(ctx) == table[name], name
    code, out, _ = run_cli("train", "--help")
    assert code == 0 and f"[default: {table['epochs']}]" in out


def test_comma_separated_options_give_usage_errors(run_cli):
    from tests.conftest import one_error_line

    code, _, err = run_cli("synth", "pamap2", "x", "--subjects", "101,abc")
    assert code == 2
    line = one_error_line(err)
    assert "--subjects" in line and "comma-separated integers" in line and "'101,abc'" in line
    code, _, err = run_cli("bench", "--batch-sizes", "1,,x")
    assert code == 2 and "--batch-sizes" in one_error_line(err)


def test_datasets_lists_every_adapter_with_rate_channels_classes_and_layout(run_cli):
    code, out, err = run_cli("datasets")
    assert code == 0, err
    blocks = out.strip().split("\n\n")
    names = [b.split(":")[0] for b in blocks]
    assert names == ["pamap2", "uci_har", "wisdm", "mhealth", "uea", "csv"]
    block = dict(zip(names, blocks))
    assert "100 Hz" in block["pamap2"] and "36 by default" in block["pamap2"]
    assert "12: lying" in block["pamap2"] and "subject101.dat" in block["pamap2"]
    assert "configs/pamap2.toml" in block["pamap2"]
    assert "20 Hz" in block["wisdm"] and "6: Walking, Jogging" in block["wisdm"]
    assert "21 by default" in block["mhealth"] and "9 by default" in block["uci_har"]
    assert "NAME_TRAIN.ts" in block["uea"] and "from the data" in block["csv"]
