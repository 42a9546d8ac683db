"""Synthetic datasets in their exact raw file formats (``har synth NAME OUT``), for the demo,
the tests and the benchmarks; there is no copy of a real dataset here.

One module per dataset, all on one body model (:mod:`data_prep.synth.body`), so that training on
them means something. Scores on synthetic data are not published scores. The writers are
imported when first used (the body model needs scipy), so listing them costs nothing.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Callable, Optional

from harkit.errors import HarError

#: ``har synth NAME`` -> the module of data_prep.synth whose ``synth_<NAME>`` writes it.
WRITERS = {"pamap2": "pamap2", "csv": "tabular", "uci_har": "uci_har", "wisdm": "wisdm",
           "mhealth": "mhealth"}
#: Options only some writers take: parameter name -> its CLI flag.
_FLAGS = {"optional": "--optional", "full_size": "--full-size"}

__all__ = ["WRITERS", "synth", *(f"synth_{name}" for name in WRITERS)]


def writer(name: str) -> Callable[..., dict]:
    """The ``synth_<name>`` function (``out, *, seed, seconds_per_activity, subjects, force,
    progress`` and maybe ``optional``/``full_size``; returns ``{"files", "rows", "bytes"}``)."""
    module = importlib.import_module(f"data_prep.synth.{WRITERS[name]}")
    return getattr(module, f"synth_{name}")


def synth(name: str, out: Path, *, seconds_per_activity: Optional[float] = None,
          **options) -> dict:
    """Write dataset ``name``'s synthetic recordings to ``out``: the writer's own default
    ``seconds_per_activity`` when None; a flag-like option (``optional``, ``full_size``) set
    for a writer that lacks it is a HarError naming the flag and the datasets that take it."""
    write = writer(name)
    takes = inspect.signature(write).parameters
    if seconds_per_activity is not None:
        options["seconds_per_activity"] = seconds_per_activity
    for param, flag in _FLAGS.items():
        if options.get(param) and param not in takes:
            others = [n for n in WRITERS if param in inspect.signature(writer(n)).parameters]
            raise HarError(f"{flag} applies to {' and '.join(others)} only; drop it for {name}")
        if param not in takes:
            options.pop(param, None)
    return write(out, **options)


def __getattr__(attr: str):
    """``from data_prep.synth import synth_pamap2`` (imports that writer's module)."""
    if attr.startswith("synth_") and attr[len("synth_"):] in WRITERS:
        return writer(attr[len("synth_"):])
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
