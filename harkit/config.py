"""TOML defaults (``configs/*.toml``, read with the stdlib ``tomllib``) and ``--config`` files.

The packaged defaults live in the repository's ``configs/`` folder, installed as the package
``harkit.configs``. :func:`config_dir` finds them either way, so ``python -m har ...`` works from
a checkout as well as installed. ``--config FILE`` replaces a packaged file; command-line options
override single keys.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Optional

from harkit.errors import HarError

#: The folder of a checkout that holds the packaged TOML files (beside ``harkit/``).
_CHECKOUT_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def config_dir() -> Path:
    """The folder of the packaged TOML files: ``harkit.configs`` when installed, else the
    checkout's ``configs/``."""
    try:
        return Path(str(resources.files("harkit.configs")))
    except ModuleNotFoundError:
        return _CHECKOUT_CONFIGS


def default_config_path(name: str) -> Path:
    """Path of the packaged ``configs/<name>.toml`` (it may not exist)."""
    return config_dir() / f"{name}.toml"


def read_toml(path: Path, option: str = "--config") -> Dict[str, Any]:
    """The whole TOML file ``path``; HarError naming ``option`` when it is missing or invalid."""
    path = Path(path)
    if not path.is_file():
        raise HarError(f"{option}: {path} does not exist; pass an existing TOML file")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise HarError(f"{option}: {path} is not valid TOML ({exc}); fix the file") from None


def read_section(name: str, section: str, path: Optional[Path] = None,
                 required: bool = True) -> Dict[str, Any]:
    """The ``[section]`` table of ``path`` (default: the packaged ``configs/<name>.toml``).

    A missing table is a HarError when ``required``, else an empty dict."""
    path = Path(path) if path is not None else default_config_path(name)
    table = read_toml(path).get(section)
    if table is None and not required:
        return {}
    if not isinstance(table, dict):
        raise HarError(f"--config: {path} has no [{section}] table; add one")
    return dict(table)
