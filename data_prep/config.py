"""The options of ``har prepare``: a dataset's ``configs/<name>.toml`` defaults, a ``--config``
file over them, single options over both; validated once here.

Each adapter declares its options as a dataclass (:class:`data_prep.datasets.base.PrepareOptions`
and subclasses); the packaged TOML's ``[prepare]`` table holds a value for every field. A
``--config FILE`` may hold any subset of the keys (so a study's layout is written once), and
``dataset = "NAME"`` to say which adapter reads the data.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, Optional

from data_prep.datasets import get_dataset
from harkit.config import read_section, read_toml
from harkit.errors import HarError


def config_dataset(path: Optional[Path]) -> Optional[str]:
    """The ``dataset`` key of a ``--config FILE``'s [prepare] table, if it names one."""
    if path is None:
        return None
    table = read_toml(Path(path)).get("prepare")
    name = table.get("dataset") if isinstance(table, dict) else None
    if name is not None and not isinstance(name, str):
        raise HarError(f"--config {path}: dataset must be a name such as \"csv\", got {name!r}")
    return name


def load_prepare_config(path: Optional[Path] = None, overrides: Optional[Dict[str, Any]] = None,
                        dataset: Optional[str] = None):
    """The adapter's options: ``configs/<dataset>.toml``'s [prepare] table, then the [prepare]
    table of ``path`` over it, then ``overrides``; validated. ``dataset`` defaults to the
    config file's ``dataset`` key, else ``pamap2``."""
    name = dataset or config_dataset(path) or "pamap2"
    adapter = get_dataset(name)
    values = read_section(name, "prepare")
    if path is not None:
        user = read_section("", "prepare", Path(path), required=False)
        if user.get("dataset", name) != name:
            raise HarError(f"--config {path} is for dataset {user['dataset']!r}, but the data is "
                           f"read as {name!r}; drop --dataset or use a config for {name}")
        user.pop("dataset", None)
        values.update(user)
    values.update(overrides or {})
    known = {f.name for f in fields(adapter.options)} - {"dataset"}
    unknown = sorted(set(values) - known)
    if unknown:
        where = f"--config {path}" if path is not None else f"configs/{name}.toml"
        raise HarError(f"{_spelled(unknown)} do(es) not apply to {name} data ({where}); its "
                       f"options are {', '.join(sorted(known))}")
    missing = sorted(known - set(values))
    if missing:
        raise HarError(f"configs/{name}.toml lacks {', '.join(missing)} in [prepare]; restore it")
    opts = adapter.options(dataset=name, **values).validate()
    adapter.validate(opts)
    return opts


def _spelled(keys) -> str:
    return ", ".join(f"--{k.replace('_', '-')}" for k in keys)
