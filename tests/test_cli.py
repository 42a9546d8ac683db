"""The `har` group: `har --help` walks the main flow, every command in its order."""

from __future__ import annotations

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
