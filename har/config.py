"""TOML defaults for the commands (``configs/*.toml``, read with the stdlib ``tomllib``).

The packaged defaults live in ``configs/`` (installed as ``har.configs``); ``--config FILE``
replaces them; command-line options override single keys.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Optional

from har.errors import HarError


def default_config_path(name: str) -> Path:
    """Path of the packaged ``configs/<name>.toml``."""
    return Path(str(resources.files("har.configs").joinpath(f"{name}.toml")))


def read_section(name: str, section: str, path: Optional[Path] = None) -> Dict[str, Any]:
    """The ``[section]`` table of ``path`` (default: the packaged ``configs/<name>.toml``)."""
    path = Path(path) if path is not None else default_config_path(name)
    if not path.is_file():
        raise HarError(f"--config: {path} does not exist; pass an existing TOML file")
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise HarError(f"--config: {path} is not valid TOML ({exc}); fix the file") from None
    table = data.get(section)
    if not isinstance(table, dict):
        raise HarError(f"--config: {path} has no [{section}] table; add one")
    return dict(table)
