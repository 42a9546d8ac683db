"""harkit's foundation: what both stages (``data_prep`` and ``har``) and ``cli.py`` share.

* :mod:`harkit.errors` -- :class:`HarError`, the one exception type for user mistakes;
* :mod:`harkit.files` -- atomic files, folders and JSON;
* :mod:`harkit.progress` -- progress bars on a terminal only;
* :mod:`harkit.config` -- the packaged TOML defaults (``configs/``) and ``--config`` files;
* ``__version__``.

It imports neither stage, nor torch, nor numpy: ``data_prep`` -> ``harkit`` and ``har`` ->
``data_prep``/``harkit`` are the only directions (docs/ARCHITECTURE.md).
"""

from harkit.errors import HarError

__version__ = "0.2.0"

__all__ = ["HarError", "__version__"]
