"""Raw recordings → windows: the preparation stage of harkit.

Public API: :func:`prepare` (raw data of any registered dataset → prepared folder),
:func:`load_prepared` (validated loader used by train, bench and evaluate),
:func:`load_prepare_config` (a dataset's options), :func:`get_dataset` / :func:`detect` /
:func:`list_datasets` (the adapters of :mod:`data_prep.datasets`).
"""

from data_prep.config import load_prepare_config
from data_prep.datasets import detect, get_dataset, list_datasets
from data_prep.prepare import prepare
from data_prep.store import PreparedData, Split, load_prepared

__all__ = ["PreparedData", "Split", "detect", "get_dataset", "list_datasets",
           "load_prepare_config", "load_prepared", "prepare"]
