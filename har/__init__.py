"""harkit's training and inference stage: models, training, evaluation, prediction, benchmarks
and export, on windows prepared by :mod:`data_prep`.

The package imports nothing heavy at start-up; ``har.train``, ``har.models`` and friends pull in
torch when they are used. ``HarError`` and ``__version__`` are the foundation's
(:mod:`harkit`), re-exported for convenience.
"""

from harkit import HarError, __version__

__all__ = ["HarError", "__version__"]
