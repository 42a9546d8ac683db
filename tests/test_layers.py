"""The layers point one way (docs/ARCHITECTURE.md): harkit (foundation) <- data_prep <- har <-
cli. Each check runs in a fresh interpreter, so what other tests imported does not count."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fresh(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, **kwargs)


def test_preparing_data_loads_neither_torch_nor_the_training_package():
    code = ("import sys, data_prep, data_prep.prepare, data_prep.synth, data_prep.download\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', "
            "'har.')) or m == 'har')\n"
            "print(','.join(bad))")
    result = _fresh(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_cli_and_train_defaults_load_without_torch():
    """`har --help` and `har train --help` stay fast: no torch until a command runs."""
    code = ("import sys, cli, har.train.options\n"
            "from har.train.options import defaults\n"
            "defaults()\n"
            "print('torch' in sys.modules)")
    result = _fresh(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


@pytest.mark.parametrize("package, forbidden", [
    ("harkit", ("har", "data_prep", "cli", "torch", "numpy")),
    ("data_prep", ("har", "cli", "torch")),
    ("har", ("cli",)),
])
def test_no_module_imports_a_layer_above_it(package, forbidden):
    """Also the imports inside functions (a lazy import is still a dependency). ``python -m
    har`` (har/__main__.py) is the CLI's entry point, above every layer."""
    for path in sorted((ROOT / package).rglob("*.py")):
        if path.name == "__main__.py":
            continue
        bad = [name for name in _imports(path)
               if any(name == f or name.startswith(f + ".") for f in forbidden)]
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_python_m_har_runs_from_a_checkout_without_install(tmp_path):
    """A copy of the sources, no editable install on the path (site is off, so no .pth file
    runs): ``python -m har`` finds its packaged TOML defaults in the checkout's configs/."""
    for name in ("har", "harkit", "data_prep", "configs"):
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "cli.py", tmp_path / "cli.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path),
                                                         sysconfig.get_paths()["purelib"]])}
    result = subprocess.run([sys.executable, "-S", "-m", "har", "train", "--help"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "[default: 100]" in result.stdout and "har train --data" in result.stdout
