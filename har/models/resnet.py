"""The seed ResNet (He et al. 2015) as HAR papers apply it to PAMAP2.

A window is a one-channel image ``[B, 1, T, C]`` (T time steps, C sensor channels). Every
convolution has a (3, 1) or 1x1 kernel, so it slides along *time only* and all sensor channels
share its filters; the sensor axis is first mixed by the final Linear::

    [B, 1, T, C] -> 4 stages (widths 64, 128, 256, 512; first block stride (2, 1))
                 -> [B, 512, T', C] -> AdaptiveAvgPool2d((1, C)) -> [B, 512, 1, C]
                 -> Linear(512 * C, num_classes) -> [B, num_classes]

Two formulations compute the same function from the same modules (one state dict):

* ``"conv2d"`` -- the reference: ``nn.Conv2d`` on ``[B, ch, T, C]``.
* ``"matmul"`` (default, faster on CPU) -- activations are kept as ``[B, T, C, ch]``; a (3, 1)
  convolution becomes one matmul of its three time taps ``[B, T', C, 3 * ch]`` with the
  conv weight, and the taps are built once per block for both the first conv and the shortcut.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Type

import torch
import torch.nn.functional as F
from torch import nn

from har.models.registry import check_choice, check_ints, register_model

FORMULATIONS = ("matmul", "conv2d")


def conv3x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """(3, 1) convolution along time: ``[B, in, T, C] -> [B, out, ceil(T / stride), C]``."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=(3, 1), stride=(stride, 1),
                     padding=(1, 0))


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """1x1 convolution: ``[B, in, T, C] -> [B, out, T, C]``."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1)


# ---- the "matmul" formulation: activations [B, T, C, ch] ----------------------------------


def time_taps(x: torch.Tensor, stride: int) -> torch.Tensor:
    """The three time taps of a (3, 1) conv, padding 1: ``[B, T, C, ch] -> [B, T', C, 3 * ch]``."""
    out_steps = (x.shape[1] - 1) // stride + 1
    padded = F.pad(x, (0, 0, 0, 0, 1, 1))
    stop = stride * (out_steps - 1) + 1
    return torch.cat([padded[:, k:k + stop:stride] for k in range(3)], dim=-1)


def conv_matmul(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv`` on taps ``[B, T', C, k * in]`` (k = kernel height) -> ``[B, T', C, out]``."""
    weight = conv.weight.squeeze(-1).transpose(1, 2)  # [out, in, k] -> [out, k, in] (taps order)
    return F.linear(x, weight.reshape(weight.shape[0], -1), conv.bias)


def batchnorm_last(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """``bn`` over the last axis of ``[..., ch]`` (the module itself, so running stats update)."""
    return bn(x.reshape(-1, x.shape[-1], 1, 1)).reshape(x.shape)


# ---- the block and the network -------------------------------------------------------------


class ResidualBlock(nn.Module):
    """conv (3,1)/stride (s,1) -> BN -> ReLU -> conv 1x1 -> BN, + shortcut, -> ReLU.

    The shortcut is the identity, or conv (3,1)/stride (s,1) + BN when the shape changes.
    ``forward``: ``[B, in, T, C] -> [B, out, T', C]``; ``forward_matmul``: the same on
    ``[B, T, C, in] -> [B, T', C, out]``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = conv3x1(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv1x1(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: Optional[nn.Sequential] = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(conv3x1(in_channels, out_channels, stride),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu(out + identity)

    def forward_matmul(self, x: torch.Tensor) -> torch.Tensor:
        taps = time_taps(x, self.stride)  # shared by conv1 and the shortcut conv
        out = self.relu(batchnorm_last(self.bn1, conv_matmul(taps, self.conv1)))
        out = batchnorm_last(self.bn2, conv_matmul(out, self.conv2))
        if self.shortcut is None:
            identity = x
        else:
            conv, bn = self.shortcut
            identity = batchnorm_last(bn, conv_matmul(taps, conv))
        return self.relu(out + identity)


class HarResNet(nn.Module):
    """Stages of ``block`` along time, then time pooled away and a Linear over ``width * C``.

    ``[B, 1, T, C] -> [B, num_classes]``. ``blocks[i]`` blocks of width ``widths[i]`` per stage;
    the first block of each stage has stride (2, 1). ``block`` is :class:`ResidualBlock` (the
    ResNet) or any block with the same constructor and two forwards (the plain CNN).
    """

    def __init__(self, block: Type[nn.Module], channels: int, num_classes: int,
                 blocks: Sequence[int], widths: Sequence[int], formulation: str = "matmul") -> None:
        super().__init__()
        self.channels = channels
        self.formulation = formulation
        stages: List[nn.Module] = []
        in_channels = 1
        for count, width in zip(blocks, widths):
            stages.append(self._make_stage(block, in_channels, width, count, stride=2))
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d((1, channels))  # time pooled away, sensor axis kept
        self.fc = nn.Linear(in_channels * channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _make_stage(block: Type[nn.Module], in_channels: int, width: int, count: int,
                    stride: int) -> nn.Sequential:
        layers = [block(in_channels, width, stride)]
        layers += [block(width, width, 1) for _ in range(count - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T, C]`` -> logits ``[B, num_classes]``."""
        if x.shape[-1] != self.channels:
            raise ValueError(f"expected {self.channels} sensor channels, got input {list(x.shape)}")
        if self.formulation == "conv2d":
            x = self.pool(self.stages(x))  # [B, width, T', C] -> [B, width, 1, C]
        else:
            x = x.permute(0, 2, 3, 1)  # [B, T, C, 1]
            for stage in self.stages:
                for block in stage:
                    x = block.forward_matmul(x)
            x = x.mean(dim=1).transpose(1, 2)  # self.pool: [B, T', C, width] -> [B, width, C]
        return self.fc(torch.flatten(x, 1))  # [B, width * C] -> [B, num_classes]


def check_stages(blocks: Sequence[int], widths: Sequence[int], formulation: str) -> None:
    """Validate the stage hyper-parameters shared by ``resnet`` and ``cnn``."""
    widths = check_ints("widths", widths, 1)
    check_ints("blocks", blocks, 1, length=len(widths))
    check_choice("formulation", formulation, FORMULATIONS)


@register_model
def resnet(window_steps: int, channels: int, num_classes: int, *,
           blocks: Sequence[int] = (1, 1, 1, 1), widths: Sequence[int] = (64, 128, 256, 512),
           formulation: str = "matmul") -> HarResNet:
    """ResNet (He et al. 2015): residual stages of (3,1) time convs, sensor axis kept to the end."""
    check_stages(blocks, widths, formulation)
    return HarResNet(ResidualBlock, channels, num_classes, blocks, widths, formulation)
