"""Model size: parameters and multiply-accumulates (MACs) per window.

MACs count the multiply-accumulates of convolutions, Linear layers and LSTMs (input and
recurrent matmuls); biases, normalization, activations and pooling are not counted. They are
measured with forward hooks on one ``[1, 1, T, C]`` window, so any registered model is counted
the same way.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List

import torch
from torch import nn

from har.models.registry import create_model, list_models, model_description
from harkit.errors import HarError


def count_parameters(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def _lstm_macs(lstm: nn.LSTM, steps: int) -> int:
    """4 gates x (input + recurrent) matmuls per step and layer."""
    directions = 2 if lstm.bidirectional else 1
    hidden = lstm.hidden_size
    total = 0
    for layer in range(lstm.num_layers):
        inputs = lstm.input_size if layer == 0 else hidden * directions
        total += 4 * hidden * (inputs + hidden) * steps * directions
    return total


def count_macs(model: nn.Module, window_steps: int, channels: int) -> int:
    """Multiply-accumulates for one window ``[1, 1, window_steps, channels]``.

    Runs a copy of ``model`` in eval mode with hooks on ``nn.Conv2d``/``nn.Conv1d``,
    ``nn.Linear`` and ``nn.LSTM``.
    """
    probe = copy.deepcopy(model).eval()
    total = 0

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal total
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            kernel = module.weight[0].numel()  # in / groups * kernel size
            total += output.numel() * kernel
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features
        elif isinstance(module, nn.LSTM):
            steps = inputs[0].shape[1 if module.batch_first else 0]
            total += _lstm_macs(module, steps)

    handles = [m.register_forward_hook(hook) for m in probe.modules()
               if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear, nn.LSTM))]
    param = next(probe.parameters())
    window = torch.zeros(1, 1, window_steps, channels, dtype=param.dtype, device=param.device)
    try:
        with torch.no_grad():
            probe(window)
    finally:
        for handle in handles:
            handle.remove()
    return total


def describe_models(window_steps: int, channels: int, num_classes: int) -> List[Dict[str, Any]]:
    """One row per registered model with default hyper-parameters: ``name``, ``parameters``,
    ``macs`` (per window), ``description``; ``parameters``/``macs`` are None and ``error`` says
    why when the model cannot take this window shape."""
    rows = []
    for name in list_models():
        row: Dict[str, Any] = {"name": name, "parameters": None, "macs": None,
                               "description": model_description(name)}
        try:
            model = create_model(name, window_steps, channels, num_classes)
        except HarError as exc:
            row["error"] = str(exc)
        else:
            row["parameters"] = count_parameters(model)
            row["macs"] = count_macs(model, window_steps, channels)
        rows.append(row)
    return rows
