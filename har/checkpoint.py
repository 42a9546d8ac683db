"""Self-describing checkpoints: save atomically, load safely with ``weights_only=True``.

A checkpoint is a dict of tensors and plain values only (keys in :data:`REQUIRED_KEYS`, the
full list in docs/FORMAT.md): ``format``/``format_version``, ``model`` (``model.config``: name,
window_steps, channels, num_classes and hyper-parameters), ``input_shape`` ``[1, T, C]``,
``classes``/``class_ids``/``channels``, ``normalization`` and ``preprocessing`` (everything
``predict`` needs to turn a raw recording into windows the same way), ``training`` (the options),
``epoch``, ``best_val_f1_macro``, ``state_dict`` and, for resuming, ``optimizer``, ``scheduler``,
``scaler``, ``rng``, ``history`` (metrics.csv rows so far), ``data_digest``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn

from harkit import __version__
from harkit.errors import HarError
from harkit.files import write_with

FORMAT_NAME = "harkit.checkpoint"
FORMAT_VERSION = 2
#: Versions the loader reads: 1 is harkit 0.1's (PAMAP2 only; preprocessing options flat).
READABLE_VERSIONS = (1, 2)
REQUIRED_KEYS = ("model", "input_shape", "classes", "channels", "state_dict")


def describe(prepared, model_config: Dict[str, Any], input_shape: Sequence[int],
             training: Dict[str, Any], data_digest: str) -> Dict[str, Any]:
    """The self-describing part of a checkpoint, from the prepared data (``PreparedData``) it is
    trained on: model, input shape, classes, channels, normalization, preprocessing, options."""
    meta = prepared.meta
    return {
        "model": dict(model_config), "input_shape": list(input_shape),
        "classes": prepared.class_names,
        "class_ids": [c.get("id") for c in meta["classes"]],
        "channels": prepared.channels, "normalization": meta.get("normalization"),
        "preprocessing": {"dataset": meta.get("dataset"), "options": meta.get("options", {}),
                          "window": meta["window"], "stride": meta.get("stride"),
                          "sample_rate_hz": meta.get("sample_rate_hz"),
                          "source_rate_hz": meta.get("source_rate_hz")},
        "training": dict(training), "data_digest": data_digest, "harkit_version": __version__,
        "fold": meta.get("fold"),
    }


def rng_state(shuffle: torch.Generator) -> Dict[str, Any]:
    """Every RNG a run draws from (torch CPU/CUDA, the batch-order generator ``shuffle``, numpy,
    random) as tensors and plain values, so ``weights_only`` loads them and resume is exact."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": random.getstate()}


def set_rng_state(rng: Dict[str, Any], shuffle: torch.Generator) -> None:
    """Restore what :func:`rng_state` saved (CUDA only when the device count matches)."""
    torch.set_rng_state(rng["torch"])
    shuffle.set_state(rng["shuffle"])
    if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])
    n = rng["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    random.setstate(rng["python"])


def save_checkpoint(path, checkpoint: Dict[str, Any]) -> None:
    """Write ``checkpoint`` to ``path`` atomically (temp file beside it + rename).

    An interrupted save (error, Ctrl-C) leaves the previous file untouched.
    """
    checkpoint = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **checkpoint}
    write_with(path, lambda fh: torch.save(checkpoint, fh))


def load_checkpoint(path, map_location: Any = "cpu") -> Dict[str, Any]:
    """Load a harkit checkpoint with ``torch.load(weights_only=True)``; HarError for a missing
    file, a file that is not a torch checkpoint, or one that is not harkit's."""
    path = Path(path)
    if not path.is_file():
        raise HarError(f"checkpoint {path} does not exist; pass a best.pt or last.pt from a "
                       "'har train' run folder")
    not_ours = (f"{path} is not a harkit checkpoint; pass a best.pt or last.pt written by "
                "'har train'")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unreadable file is the same user mistake
        raise HarError(f"{not_ours} ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT_NAME:
        raise HarError(not_ours)
    if ckpt.get("format_version") not in READABLE_VERSIONS:
        raise HarError(f"{path} has checkpoint format_version {ckpt.get('format_version')!r}; "
                       f"this harkit reads {', '.join(map(str, READABLE_VERSIONS))}; train it "
                       "again with this version")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise HarError(f"{path} lacks {', '.join(missing)}; it is damaged, train again")
    # Earlier resnet/cnn checkpoints name a training "formulation"; there is one graph now, with
    # the same weights, so the key is dropped.
    ckpt["model"] = {k: v for k, v in ckpt["model"].items() if k != "formulation"}
    return ckpt


def model_from_checkpoint(ckpt: Dict[str, Any], device: Optional[torch.device] = None
                          ) -> nn.Module:
    """Rebuild the model from ``ckpt["model"]``, load its weights, return it in eval mode."""
    from har.models import create_model

    model = create_model(**ckpt["model"])
    model.load_state_dict(ckpt["state_dict"])
    if device is not None:
        model.to(device)
    return model.eval()


def check_resumable(ckpt: Dict[str, Any], path, name: str, input_shape, classes,
                    model_config: Optional[Dict[str, Any]] = None) -> None:
    """HarError unless ``ckpt`` (from ``path``) has the model ``name``, the input shape
    ``[1, T, C]`` and the classes of the run that resumes from it (and, when given, the same
    ``model_config``: hyper-parameters)."""
    saved = ckpt["model"].get("name")
    if saved != name:
        raise HarError(f"--resume {path} holds a {saved!r} model, not {name!r}; pass --model "
                       f"{saved} or start a new run without --resume")
    if list(ckpt["input_shape"]) != list(input_shape):
        raise HarError(f"--resume {path} was trained on windows {list(ckpt['input_shape'])} but "
                       f"the data has {list(input_shape)} ([1, T, C]); use the prepared folder it "
                       "was trained on or start a new run")
    if list(ckpt["classes"]) != list(classes):
        raise HarError(f"--resume {path} was trained on classes {list(ckpt['classes'])}, the data "
                       f"has {list(classes)}; use the prepared folder it was trained on")
    if model_config is not None and ckpt["model"] != model_config:
        changed = sorted(k for k in set(ckpt["model"]) | set(model_config)
                         if ckpt["model"].get(k) != model_config.get(k))
        raise HarError(f"--resume {path}: the model's hyper-parameters differ "
                       f"({', '.join(changed)}); resume with the checkpoint's settings or start a "
                       "new run")
