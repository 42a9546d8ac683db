"""The plain CNN baseline: the ResNet's stages without shortcuts.

``[B, 1, T, C] -> stages of [(3,1) conv stride (s,1) -> BN -> ReLU -> 1x1 conv -> BN -> ReLU]
-> AdaptiveAvgPool2d((1, C)) -> Linear(width * C, num_classes)``; the same trunk, pooling, head
and formulations as :mod:`har.models.resnet`, so the two differ only by the residual connections.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from har.models.registry import register_model
from har.models.resnet import (HarResNet, batchnorm_last, check_stages, conv1x1, conv3x1,
                               conv_matmul, time_taps)


class PlainBlock(nn.Module):
    """conv (3,1)/stride (s,1) -> BN -> ReLU -> conv 1x1 -> BN -> ReLU, no shortcut.

    ``forward``: ``[B, in, T, C] -> [B, out, T', C]``; ``forward_matmul``: ``[B, T, C, in] ->
    [B, T', C, out]``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = conv3x1(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv1x1(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))

    def forward_matmul(self, x: torch.Tensor) -> torch.Tensor:
        out = conv_matmul(time_taps(x, self.stride), self.conv1)
        out = self.relu(batchnorm_last(self.bn1, out))
        return self.relu(batchnorm_last(self.bn2, conv_matmul(out, self.conv2)))


@register_model
def cnn(window_steps: int, channels: int, num_classes: int, *,
        blocks: Sequence[int] = (1, 1, 1, 1), widths: Sequence[int] = (64, 128, 256, 512),
        formulation: str = "matmul") -> HarResNet:
    """Plain CNN: the ResNet's (3,1) time-conv stages without shortcuts (baseline)."""
    check_stages(blocks, widths, formulation)
    return HarResNet(PlainBlock, channels, num_classes, blocks, widths, formulation)
