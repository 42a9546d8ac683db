"""The options of a training run and where their values come from.

Defaults live in one place, the ``[train]`` table of ``configs/train.toml``; a model whose recipe
differs ships ``configs/<model>.toml`` with only the keys that differ; ``--config FILE``
overrides keys of both ([train]) and the model's hyper-parameters ([model]); explicit options
override everything. A model's hyper-parameter defaults are its builder's signature
(:func:`har.models.model_config`), never restated in a TOML.

:class:`TrainOptions` has no defaults of its own: :func:`resolve` builds it from those layers,
and each field's ``metadata["help"]`` is the ``har train`` option's help text, so the CLI (which
also shows the TOML's values as its defaults) is generated from this one definition. This
module imports no torch.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from harkit.config import default_config_path, read_section
from harkit.errors import HarError

DEVICES = ("auto", "cpu", "cuda")
MIN_LATENCY_RUNS = 20


def _opt(help: str, **checks: Any):
    """A :class:`TrainOptions` field without a default; ``help`` is the CLI help text, ``checks``
    its accepted range (``minimum``, ``choices``)."""
    return field(metadata={"help": help, **checks})


@dataclass(frozen=True)
class TrainOptions:
    """Every choice of a training run (stored in config.json and in each checkpoint)."""

    epochs: int = _opt("Epochs in total (with --resume: the new total).", minimum=1)
    batch_size: int = _opt("Windows per optimizer step.", minimum=1)
    lr: float = _opt("AdamW learning rate.")
    weight_decay: float = _opt("AdamW weight decay.")
    lr_step: int = _opt("StepLR step in epochs; 0 = max(1, epochs // 3).", minimum=0)
    lr_gamma: float = _opt("StepLR factor per step, in (0, 1].")
    seed: int = _opt("Random seed; same seed, same curve on the CPU.", minimum=0)
    device: str = _opt("auto: CUDA when available.", choices=DEVICES)
    amp: Optional[bool] = _opt("Mixed precision: bf16 (or fp16 + scaler) autocast on CUDA, bf16 "
                               "autocast on a CPU with AMX/AVX-512 BF16; auto: on for CUDA and "
                               "CPUs with native bf16 (AMX, AVX-512 BF16), off elsewhere.")
    class_weights: bool = _opt("Weight the loss by inverse train-class frequency.")
    early_stop: int = _opt("Stop after N epochs without a better val macro F1; 0 = never.",
                           minimum=0)
    threads: int = _opt("CPU threads for torch; 0 = one per core.", minimum=0)
    channels_last: bool = _opt("NHWC activations (faster oneDNN / cuDNN convolutions).")
    compile: bool = _opt("torch.compile the training forward (minutes of compiling).")
    sync_bn: bool = _opt("With several processes (torchrun, --nproc): BatchNorm statistics of "
                         "the global batch, as one process computes them.")
    latency_runs: int = _opt("Single-window passes timed per epoch (median).",
                             minimum=MIN_LATENCY_RUNS)

    @property
    def step_epochs(self) -> int:
        """The StepLR step in epochs: ``lr_step``, or ``max(1, epochs // 3)`` when it is 0."""
        return self.lr_step or max(1, self.epochs // 3)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> "TrainOptions":
        """HarError naming the option, the bad value and the accepted range."""
        for f in fields(self):
            value, kind = getattr(self, f.name), _HINTS[f.name]
            if kind is int:
                low = f.metadata["minimum"]
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    raise HarError(f"{option_text(f.name, value)} is invalid; pass an integer "
                                   f">= {low}")
            elif kind is bool or kind == Optional[bool]:
                allowed = (True, False) if kind is bool else (True, False, None)
                if not any(value is a for a in allowed):
                    raise HarError(f"{option_text(f.name, value)} is invalid; use true or false"
                                   + (' or "auto"' if None in allowed else ""))
            elif "choices" in f.metadata and value not in f.metadata["choices"]:
                raise HarError(f"{option_text(f.name, value)} is invalid; choose one of "
                               f"{', '.join(f.metadata['choices'])}")
        for name, accepted, ok in (("lr", "a number > 0", lambda v: v > 0),
                                   ("weight_decay", "a number >= 0", lambda v: v >= 0),
                                   ("lr_gamma", "a number in (0, 1]", lambda v: 0 < v <= 1)):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or not ok(value)):
                raise HarError(f"{option_text(name, value)} is invalid; pass {accepted}")
        return self


_HINTS = typing.get_type_hints(TrainOptions)
#: Options a resumed run may change; the others are the checkpoint's (the curve's definition).
RESUMABLE = ("epochs", "early_stop", "device", "amp", "threads", "channels_last", "compile",
             "latency_runs", "sync_bn")
#: ``[train]`` keys that are not :class:`TrainOptions` fields but arguments of ``fit``.
RUN_KEYS = ("model", "data")


def option_text(name: str, value: Any) -> str:
    """How a user sets ``name``: ``--batch-size 0`` (the same key in a TOML's [train] table)."""
    return f"--{name.replace('_', '-')} {value!r}"


# --------------------------------------------------------------------------- the TOML layers
def _from_toml(table: Dict[str, Any]) -> Dict[str, Any]:
    """TOML has no null: ``amp = "auto"`` means None (the device's default)."""
    table = dict(table)
    if table.get("amp") == "auto":
        table["amp"] = None
    return table


def _check_keys(table: Dict[str, Any], where: str) -> None:
    known = {f.name for f in fields(TrainOptions)} | set(RUN_KEYS)
    unknown = sorted(set(table) - known)
    if unknown:
        raise HarError(f"{where}: unknown key(s) {', '.join(unknown)} in [train]; known keys: "
                       f"{', '.join(sorted(known))}")


def defaults(model: Optional[str] = None) -> Dict[str, Any]:
    """The ``[train]`` defaults: ``configs/train.toml``, then ``configs/<model>.toml``'s [train]
    keys when that file exists (``model`` and ``data`` included)."""
    table = _from_toml(read_section("train", "train"))
    name = model or table["model"]
    if name != "train" and default_config_path(name).is_file():
        table.update(_from_toml(read_section(name, "train", required=False)))
    _check_keys(table, "configs")
    return table


def model_overrides(model: str) -> Dict[str, Any]:
    """Hyper-parameters a packaged ``configs/<model>.toml`` changes (its [model] table)."""
    if model == "train" or not default_config_path(model).is_file():
        return {}
    return read_section(model, "model", required=False)


def read_config(path) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``([train], [model])`` of a ``--config FILE``; either table may be absent."""
    path = Path(path)
    table = _from_toml(read_section("", "train", path, required=False))
    hparams = read_section("", "model", path, required=False)
    _check_keys(table, f"--config {path}")
    return table, hparams


def resolve(options: Dict[str, Any], *layers: Dict[str, Any]) -> TrainOptions:
    """``options`` over ``layers`` (each a [train] table, most important first); validated."""
    merged: Dict[str, Any] = {}
    for layer in reversed(layers):
        merged.update(layer)
    merged.update(options)
    names = {f.name for f in fields(TrainOptions)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(f"fit() got unknown option(s) {', '.join(unknown)}")
    if merged.get("threads") is None:
        merged["threads"] = 0          # harkit 0.1 checkpoints stored null
    missing = sorted(names - set(merged))
    if missing:
        raise HarError(f"configs/train.toml lacks {', '.join(missing)} in [train]; restore it")
    return TrainOptions(**{k: merged[k] for k in names}).validate()


def resolve_resumed(options: Dict[str, Any], saved: Dict[str, Any], resume) -> TrainOptions:
    """A resumed run: ``options`` over the checkpoint's ``saved`` ones; only :data:`RESUMABLE`
    options may differ (``epochs`` is the new total)."""
    names = {f.name for f in fields(TrainOptions)}
    saved = {k: v for k, v in saved.items() if k in names}
    for key, value in options.items():
        if key not in RESUMABLE and key in saved and value != saved[key]:
            raise HarError(f"{option_text(key, value)} differs from {saved[key]!r} in --resume "
                           f"{resume}; a resumed run keeps its training options (drop it, or "
                           "start a new run without --resume)")
    return resolve(options, saved, defaults())   # options newer than the checkpoint: defaults
