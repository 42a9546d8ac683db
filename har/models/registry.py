"""The one model registry: ``create_model(name, window_steps, channels, num_classes, **hparams)``.

A model module registers a *builder*: a function ``(window_steps, channels, num_classes, *,
hparam=default, ...) -> nn.Module`` whose keyword-only parameters are the model's
hyper-parameters and whose docstring's first line describes it. The registry derives the
defaults (:func:`model_config`) from that signature, rejects unknown names and hyper-parameters
with a :class:`~harkit.errors.HarError`, and stamps ``model.config`` (plain values) on every model,
so ``create_model(**model.config)`` rebuilds it -- that is how a checkpoint stores a model.

Every model maps a window ``[B, 1, T, C]`` (T = ``window_steps``, C = ``channels``) to logits
``[B, num_classes]``.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Sequence

from torch import nn

from harkit.errors import HarError

Builder = Callable[..., nn.Module]

_BUILDERS: Dict[str, Builder] = {}


def register_model(builder: Builder) -> Builder:
    """Decorator: register ``builder`` under its function name (``@register_model def resnet``)."""
    name = builder.__name__
    if name in _BUILDERS:
        raise ValueError(f"model {name!r} is registered twice")
    _BUILDERS[name] = builder
    return builder


def list_models() -> List[str]:
    """Names of the registered models, sorted."""
    return sorted(_BUILDERS)


def _builder(name: str) -> Builder:
    if name not in _BUILDERS:
        raise HarError(f"model: unknown model {name!r}; choose one of {', '.join(list_models())}")
    return _BUILDERS[name]


def _plain(value: Any) -> Any:
    """Tuples become lists so configs are plain JSON/TOML values."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def model_config(name: str) -> Dict[str, Any]:
    """Default hyper-parameters of model ``name`` (plain values), e.g.
    ``{"blocks": [1, 1, 1, 1], ...}``."""
    params = inspect.signature(_builder(name)).parameters.values()
    return {p.name: _plain(p.default) for p in params if p.kind is p.KEYWORD_ONLY}


def model_description(name: str) -> str:
    """First line of the builder's docstring."""
    doc = inspect.getdoc(_builder(name)) or ""
    return doc.splitlines()[0] if doc else ""


def create_model(name: str, window_steps: int, channels: int, num_classes: int,
                 **hparams: Any) -> nn.Module:
    """Build model ``name`` for windows ``[B, 1, window_steps, channels]`` -> logits
    ``[B, num_classes]``.

    ``hparams`` override :func:`model_config(name) <model_config>`; the result carries
    ``model.config`` (name, window_steps, channels, num_classes and every hyper-parameter), so
    ``create_model(**model.config)`` builds an identical architecture.
    """
    builder = _builder(name)
    defaults = model_config(name)
    unknown = sorted(set(hparams) - set(defaults))
    if unknown:
        accepted = ", ".join(defaults) or "none"
        raise HarError(f"model {name}: unknown hyper-parameter {unknown[0]!r}; "
                       f"accepted: {accepted}")
    config = {**defaults, **{k: _plain(v) for k, v in hparams.items()}}
    try:
        check_int("window_steps", window_steps, 1)
        check_int("channels", channels, 1)
        check_int("num_classes", num_classes, 2)
        model = builder(window_steps, channels, num_classes, **config)
    except HarError as exc:
        raise HarError(f"model {name}: {exc}") from None
    model.config = {"name": name, "window_steps": window_steps, "channels": channels,
                    "num_classes": num_classes, **config}
    return model


# ---- validation helpers for builders: one-line HarError quoting the value and the accepted range


def check_int(option: str, value: Any, minimum: int) -> int:
    """``value`` must be an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise HarError(f"{option}={value!r} is invalid; pass an integer >= {minimum}")
    return value


def check_ints(option: str, value: Any, minimum: int, length: int | None = None) -> List[int]:
    """``value`` must be a non-empty list of ints >= ``minimum`` (of ``length`` items if given)."""
    ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value)
    if not ok or (length is not None and len(value) != length):
        size = f"{length} " if length is not None else "one or more "
        raise HarError(f"{option}={value!r} is invalid; pass a list of {size}integers >= {minimum}")
    return list(value)


def check_float(option: str, value: Any, low: float, high: float) -> float:
    """``value`` must be a number in ``[low, high)``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < high:
        raise HarError(f"{option}={value!r} is invalid; pass a number in [{low}, {high})")
    return float(value)


def check_choice(option: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise HarError(f"{option}={value!r} is invalid; choose one of {', '.join(choices)}")
    return value
