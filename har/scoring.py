"""Forward passes for scores: the one loop behind every number harkit reports.

``har train`` (val every epoch, test at the end), ``har evaluate`` and ``har predict`` all call
:func:`logits`, so a checkpoint scored on the same windows on the same device gives the same
figures everywhere. Reported scores are computed in **float32**, eval mode, in batches of
:data:`EVAL_BATCH` windows, whatever precision training used (autocast is for speed, not for
the numbers a user compares).
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Union

import numpy as np
import torch
from torch import nn

from harkit.errors import HarError

EVAL_BATCH = 256

Windows = Union[np.ndarray, torch.Tensor]


def check_windows(model: nn.Module, x: Windows) -> None:
    """HarError unless ``x`` is ``[N, T, C]`` with the model's T and C (``model.config``)."""
    config = getattr(model, "config", {})
    steps, channels = config.get("window_steps"), config.get("channels")
    shape = tuple(x.shape)
    if len(shape) != 3 or (steps, channels) != (None, None) and shape[1:] != (steps, channels):
        raise HarError(f"windows of shape {list(shape)} do not fit the "
                       f"{config.get('name', 'model')}: it expects [N, T, C] = "
                       f"[N, {steps}, {channels}]; cut windows of {steps} steps of the "
                       f"checkpoint's {channels} channels")


def logits(model: nn.Module, x: Windows, *, device: Optional[torch.device] = None,
           batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """float32 logits ``[N, K]`` (on ``device``) of normalized windows ``x [N, T, C]`` (numpy or
    torch, any device), in eval mode without autocast; the model's train/eval mode is restored.
    ``device`` defaults to the model's."""
    check_windows(model, x)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.inference_mode():
            for i in range(0, x.shape[0], batch_size):
                xb = x[i:i + batch_size]
                if isinstance(xb, np.ndarray):
                    xb = torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32))
                out.append(model(xb.to(device, non_blocking=True).unsqueeze(1)).float())
    finally:
        model.train(was_training)
    if not out:
        return torch.empty((0, int(model.config["num_classes"])), device=device)
    return torch.cat(out)


def score(model: nn.Module, x: Windows, y: Windows, *,
          device: Optional[torch.device] = None) -> Dict[str, Any]:
    """Score windows ``x [N, T, C]`` with labels ``y [N]``: ``{"loss": mean cross-entropy
    (nats), "scores": har.metrics scores, "predictions": int64 [N] numpy, "seconds": wall time
    of the forward passes}``."""
    from har.device import synchronize

    device = device or next(model.parameters()).device
    synchronize(device)
    t0 = time.perf_counter()
    out = logits(model, x, device=device)
    synchronize(device)
    return score_logits(out, y, time.perf_counter() - t0)


def score_logits(out: torch.Tensor, y: Windows, seconds: float) -> Dict[str, Any]:
    """:func:`score`'s result from float32 logits ``out [N, K]`` already computed (e.g.
    gathered from several processes) and labels ``y [N]``."""
    from har.metrics import classification_scores

    target = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y,
                             dtype=torch.int64).to(out.device)
    loss = float(nn.functional.cross_entropy(out, target, reduction="mean")) if len(out) else 0.0
    predictions = out.argmax(1).cpu().numpy()
    return {"loss": loss, "predictions": predictions, "seconds": seconds,
            "scores": classification_scores(target.cpu().numpy(), predictions)}
