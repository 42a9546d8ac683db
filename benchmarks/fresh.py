"""Fresh-process runs for the prepare benchmarks: each step runs as a user's command does.

* Byte-code is cached (``PYTHONDONTWRITEBYTECODE`` dropped from the child's environment, and
  :func:`warm_bytecode` first), as after ``pip install``: otherwise every run recompiles
  harkit's modules, about 0.1 s that a user never pays twice.
* :func:`run_python` calls ``os.sync()`` before each step, so that the windows the previous step
  wrote (hundreds of MB) are not being written back to disk while this one is timed, and the
  benchmarks remove a step's output folder before it (:func:`clear`): ``--force`` then has no
  earlier folder to delete inside the timed run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child_env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_python(code: str, args=(), check: bool = True) -> subprocess.CompletedProcess:
    """``python -c code args...`` in the repository, after ``os.sync()``."""
    os.sync()
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, check=check, env=child_env())


def warm_bytecode() -> None:
    """Compile and cache harkit's modules once, outside the timed runs."""
    run_python("import cli, data_prep.prepare, data_prep.splits, data_prep.store")


def clear(folder: Path) -> Path:
    """``folder`` removed (if there), for a step to write it anew."""
    shutil.rmtree(folder, ignore_errors=True)
    return folder
