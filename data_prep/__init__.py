"""Raw recordings → windows: the preparation stage of harkit.

Public API: :func:`prepare` (raw PAMAP2 → prepared folder), :func:`load_prepared` (validated
loader used by train, bench and evaluate), :func:`load_prepare_config`.
"""

from data_prep.config import PrepareConfig, load_prepare_config
from data_prep.prepare import prepare
from data_prep.store import PreparedData, Split, load_prepared

__all__ = ["PrepareConfig", "PreparedData", "Split", "load_prepare_config", "load_prepared",
           "prepare"]
