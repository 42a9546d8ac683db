"""The dataset adapters: one module each, registered by name like the models.

:func:`get_dataset` gives an adapter by name, :func:`detect` finds the one whose files a path
holds, :func:`list_datasets` lists them (``har datasets``). A new dataset is one module here
(a :class:`~data_prep.datasets.base.Dataset` subclass and its instance ``DATASET``), its
``configs/<name>.toml`` with the ``[prepare]`` defaults, and one line in :data:`_MODULES`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Dict, List

from data_prep.datasets.base import Dataset
from harkit.errors import HarError

#: The adapter modules, in the order ``detect`` tries them (most specific layout first).
_MODULES = ("pamap2", "uci_har", "wisdm", "mhealth", "uea", "tabular")
_REGISTRY: Dict[str, Dataset] = {}


def _load() -> Dict[str, Dataset]:
    if not _REGISTRY:
        for module in _MODULES:
            adapter = importlib.import_module(f"data_prep.datasets.{module}").DATASET
            if adapter.name in _REGISTRY:
                raise ValueError(f"dataset {adapter.name!r} is registered twice")
            _REGISTRY[adapter.name] = adapter
    return _REGISTRY


def list_datasets() -> List[Dataset]:
    """Every adapter, in detection order."""
    return list(_load().values())


def get_dataset(name: str) -> Dataset:
    """The adapter registered as ``name``; HarError listing the names otherwise."""
    registry = _load()
    if name not in registry:
        raise HarError(f"--dataset {name!r} is unknown; choose one of {', '.join(registry)} "
                       "('har datasets' describes them)")
    return registry[name]


def detect(path: Path) -> Dataset:
    """The adapter whose files ``path`` holds; HarError naming the layouts tried."""
    path = Path(path)
    if not path.exists():
        raise HarError(f"{path} does not exist; pass a dataset folder, file or archive")
    for adapter in list_datasets():
        if adapter.detect(path):
            return adapter
    tried = "; ".join(f"{a.name}: {a.layout}" for a in list_datasets())
    raise HarError(f"{path} holds no dataset harkit recognises (tried {tried}); pass "
                   "--dataset NAME to say which it is")
