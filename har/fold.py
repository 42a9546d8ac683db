"""An inference-only ResNet/CNN: BatchNorm folded into the convolutions, one matmul per conv pair.

:func:`fold_model` turns a trained :class:`~har.models.resnet.HarResNet` (``resnet`` or ``cnn``)
in eval mode into a :class:`FoldedHarResNet` that computes the same logits with fewer, larger
operations:

* every BatchNorm's running statistics and affine parameters are folded into the weight and bias
  of the convolution before it (``w' = w * g / sqrt(var + eps)``, ``b' = (b - mean) * g /
  sqrt(var + eps) + beta``);
* activations stay ``[B, T, C, ch]`` (channels last, so every convolution is a matmul): a
  (3, 1) convolution is one matmul of the three time taps ``[B, T', C, 3 * ch]``, and a block's
  first convolution and its shortcut convolution, which read the same taps, become *one* matmul
  with their weights stacked (``[2 * out, 3 * in]``);
* the final ``[B, width, C]`` -> ``[B, width * C]`` transpose is folded into the Linear's weight.

The folded module holds no BatchNorm, so it cannot be trained; it is what the ``optimized``,
``bf16``, ``onnx``, ``int8`` and ``cuda*`` backends run and what ``har export`` writes.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from har.models.resnet import HarResNet


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """``bn(conv(x))`` as one convolution: weight ``[out, in, k]`` (the (k, 1) kernel squeezed),
    bias ``[out]``; float32, detached."""
    weight = conv.weight.detach().float().squeeze(-1)  # [out, in, k, 1] -> [out, in, k]
    bias = (conv.bias.detach().float() if conv.bias is not None
            else torch.zeros(weight.shape[0], device=weight.device))
    scale = bn.weight.detach().float() / torch.sqrt(bn.running_var.float() + bn.eps)
    return (weight * scale[:, None, None],
            (bias - bn.running_mean.float()) * scale + bn.bias.detach().float())


def _as_matrix(weight: torch.Tensor) -> torch.Tensor:
    """Conv weight ``[out, in, k]`` -> matmul weight ``[out, k * in]`` in taps order (tap-major)."""
    return weight.transpose(1, 2).reshape(weight.shape[0], -1).contiguous()


def _time_taps(x: torch.Tensor, stride: int) -> torch.Tensor:
    """The three time taps of a (3, 1) conv, padding 1: ``[B, T, C, ch] -> [B, T', C, 3 * ch]``."""
    out_steps = (x.shape[1] - 1) // stride + 1
    padded = F.pad(x, (0, 0, 0, 0, 1, 1))
    stop = stride * (out_steps - 1) + 1
    return torch.cat([padded[:, k:k + stop:stride] for k in range(3)], dim=-1)


class FoldedBlock(nn.Module):
    """A residual (or plain) block with BatchNorm folded: ``[B, T, C, in] -> [B, T', C, out]``.

    ``w1`` ``[out (+ out), 3 * in]`` is conv1 (stacked with the shortcut conv when there is one),
    ``w2`` ``[out, out]`` is the 1x1 conv2.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.stride = int(block.stride)
        self.out_channels = block.conv1.out_channels
        self.residual = bool(block.residual)  # False: the plain CNN (cnn)
        self.projection = self.residual and block.shortcut is not None
        w1, b1 = fold_batchnorm(block.conv1, block.bn1)
        if self.projection:
            ws, bs = fold_batchnorm(block.shortcut[0], block.shortcut[1])
            w1, b1 = torch.cat([w1, ws]), torch.cat([b1, bs])
        w2, b2 = fold_batchnorm(block.conv2, block.bn2)
        self.register_buffer("w1", _as_matrix(w1))
        self.register_buffer("b1", b1)
        self.register_buffer("w2", _as_matrix(w2))
        self.register_buffer("b2", b2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(_time_taps(x, self.stride), self.w1, self.b1)
        if self.projection:
            out, identity = y[..., :self.out_channels], y[..., self.out_channels:]
        else:
            out, identity = y, x
        out = F.linear(torch.relu(out), self.w2, self.b2)
        if self.residual:
            out = out + identity
        return torch.relu(out)


class FoldedHarResNet(nn.Module):
    """Inference-only :class:`HarResNet`: ``[B, 1, T, C]`` -> logits ``[B, num_classes]``."""

    def __init__(self, model: HarResNet) -> None:
        super().__init__()
        self.channels = model.channels
        self.blocks = nn.ModuleList([FoldedBlock(b) for stage in model.stages for b in stage])
        weight = model.fc.weight.detach().float()  # [K, width * C], index w * C + c
        classes, width = weight.shape[0], weight.shape[1] // self.channels
        # reorder to index c * width + w, so [B, C, width] flattens without a transpose
        self.register_buffer("fc_weight", weight.reshape(classes, width, self.channels)
                             .transpose(1, 2).reshape(classes, -1).contiguous())
        self.register_buffer("fc_bias", model.fc.bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T, C]`` -> logits ``[B, num_classes]``."""
        x = x.permute(0, 2, 3, 1)  # [B, T, C, 1]
        for block in self.blocks:
            x = block(x)
        x = x.mean(dim=1)  # time pooled away: [B, C, width]
        return F.linear(x.reshape(x.shape[0], -1), self.fc_weight, self.fc_bias)


def can_fold(model: nn.Module) -> bool:
    """True for models :func:`fold_model` rewrites (``resnet``, ``cnn``)."""
    return isinstance(model, HarResNet)


def fold_model(model: nn.Module) -> Optional[FoldedHarResNet]:
    """The folded inference module of ``model`` (on its device, float32), or None when the model
    has no folded form (e.g. ``deepconvlstm``). ``model`` is not modified."""
    if not can_fold(model):
        return None
    param = next(model.parameters())
    return FoldedHarResNet(model).to(param.device).eval()

