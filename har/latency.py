"""Single-sample latency: how fast a model answers one window in real time.

The median wall-clock milliseconds of ``runs`` (>= 20) forward passes of one window
``[1, 1, T, C]`` on the model's device, in eval mode under ``torch.inference_mode``, after
``warmup`` untimed passes; CUDA is synchronized around each timed pass.
"""

from __future__ import annotations

import statistics
import time
from typing import Optional, Sequence

import torch
from torch import nn

from har.device import autocast, synchronize

MIN_RUNS = 20


def single_sample_latency_ms(model: nn.Module, input_shape: Sequence[int], *, runs: int = MIN_RUNS,
                             warmup: int = 3, amp_dtype: Optional[torch.dtype] = None) -> float:
    """Median ms of ``runs`` forward passes of one zero window of ``input_shape`` ``[1, T, C]``.

    The model's train/eval mode is restored afterwards.
    """
    runs = max(int(runs), MIN_RUNS)
    param = next(model.parameters())
    device = param.device
    window = torch.zeros((1, *input_shape), dtype=torch.float32, device=device)
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.inference_mode(), autocast(device, amp_dtype):
            for i in range(warmup + runs):
                synchronize(device)
                t0 = time.perf_counter()
                model(window)
                synchronize(device)
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    return statistics.median(times) * 1e3
