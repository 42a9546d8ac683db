"""The seed ResNet (He et al. 2015) as HAR papers apply it to PAMAP2, and its plain-CNN baseline.

A window is a one-channel image ``[B, 1, T, C]`` (T time steps, C sensor channels). Every
convolution has a (3, 1) or 1x1 kernel, so it slides along *time only* and all sensor channels
share its filters; the sensor axis is first mixed by the final Linear::

    [B, 1, T, C] -> 4 stages (widths 64, 128, 256, 512; first block stride (2, 1))
                 -> [B, 512, T', C] -> AdaptiveAvgPool2d((1, C)) -> [B, 512, 1, C]
                 -> Linear(512 * C, num_classes) -> [B, num_classes]

``resnet`` and ``cnn`` are the same network; ``cnn`` drops the shortcuts (``residual=False``).
This is the one definition, the graph training runs; inference rewrites of it (BatchNorm folded,
one matmul per convolution pair) are backend transforms in :mod:`har.fold`.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn

from har.models.registry import check_ints, register_model


def conv3x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """(3, 1) convolution along time: ``[B, in, T, C] -> [B, out, ceil(T / stride), C]``."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=(3, 1), stride=(stride, 1),
                     padding=(1, 0))


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """1x1 convolution: ``[B, in, T, C] -> [B, out, T, C]``."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1)


class Block(nn.Module):
    """conv (3,1)/stride (s,1) -> BN -> ReLU -> conv 1x1 -> BN [+ shortcut] -> ReLU.

    ``[B, in, T, C] -> [B, out, ceil(T / s), C]``. With ``residual`` the shortcut is the
    identity, or conv (3,1)/stride (s,1) + BN when the shape changes; without it the block is
    the plain CNN's (no shortcut at all).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 residual: bool = True) -> None:
        super().__init__()
        self.stride = stride
        self.residual = residual
        self.conv1 = conv3x1(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv1x1(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: Optional[nn.Sequential] = None
        if residual and (stride != 1 or in_channels != out_channels):
            self.shortcut = nn.Sequential(conv3x1(in_channels, out_channels, stride),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.shortcut is None else self.shortcut(x))
        return self.relu(out)


class HarResNet(nn.Module):
    """Stages of :class:`Block` along time, then time pooled away and a Linear over
    ``width * C``: ``[B, 1, T, C] -> [B, num_classes]``.

    ``blocks[i]`` blocks of width ``widths[i]`` per stage; the first block of each stage has
    stride (2, 1).
    """

    def __init__(self, channels: int, num_classes: int, blocks: Sequence[int],
                 widths: Sequence[int], residual: bool = True) -> None:
        super().__init__()
        self.channels = channels
        stages: List[nn.Module] = []
        in_channels = 1
        for count, width in zip(blocks, widths):
            layers = [Block(in_channels, width, 2, residual)]
            layers += [Block(width, width, 1, residual) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d((1, channels))  # time pooled away, sensor axis kept
        self.fc = nn.Linear(in_channels * channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T, C]`` -> logits ``[B, num_classes]``."""
        if x.shape[-1] != self.channels:
            raise ValueError(f"expected {self.channels} sensor channels, got input {list(x.shape)}")
        x = self.pool(self.stages(x))  # [B, width, T', C] -> [B, width, 1, C]
        return self.fc(torch.flatten(x, 1))  # [B, width * C] -> [B, num_classes]


def _build(channels: int, num_classes: int, blocks, widths, residual: bool) -> HarResNet:
    widths = check_ints("widths", widths, 1)
    check_ints("blocks", blocks, 1, length=len(widths))
    return HarResNet(channels, num_classes, blocks, widths, residual)


@register_model
def resnet(window_steps: int, channels: int, num_classes: int, *,
           blocks: Sequence[int] = (1, 1, 1, 1),
           widths: Sequence[int] = (64, 128, 256, 512)) -> HarResNet:
    """ResNet (He et al. 2015): residual stages of (3,1) time convs, sensor axis kept to the end."""
    return _build(channels, num_classes, blocks, widths, residual=True)


@register_model
def cnn(window_steps: int, channels: int, num_classes: int, *,
        blocks: Sequence[int] = (1, 1, 1, 1),
        widths: Sequence[int] = (64, 128, 256, 512)) -> HarResNet:
    """Plain CNN: the ResNet's (3,1) time-conv stages without shortcuts (baseline)."""
    return _build(channels, num_classes, blocks, widths, residual=False)
