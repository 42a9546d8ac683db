"""DeepConvLSTM (Ordonez & Roggen, Sensors 2016).

``[B, 1, T, C] -> 4 x [Conv2d kernel (5, 1) along time, no padding, ReLU] -> [B, 64, T', C]``
(T' = T - 16), then per time step the sensor channels are flattened (``[B, T', 64 * C]``),
dropout 0.5, a two-layer LSTM (128 units, dropout 0.5 between the layers), dropout 0.5 and a
Linear on the last time step's output -> ``[B, num_classes]``. Dropout before each LSTM layer and
the classifier follows the authors' reference implementation.
"""

from __future__ import annotations

import torch
from torch import nn

from har.models.registry import check_float, check_int, register_model
from harkit.errors import HarError


class DeepConvLSTM(nn.Module):
    """``[B, 1, T, C] -> [B, num_classes]``; needs ``T > conv_layers * (kernel - 1)``."""

    def __init__(self, channels: int, num_classes: int, filters: int = 64, kernel: int = 5,
                 conv_layers: int = 4, lstm_units: int = 128, lstm_layers: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        convs = []
        for i in range(conv_layers):
            convs += [nn.Conv2d(1 if i == 0 else filters, filters, kernel_size=(kernel, 1)),
                      nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*convs)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(filters * channels, lstm_units, num_layers=lstm_layers,
                            dropout=dropout if lstm_layers > 1 else 0.0, batch_first=True)
        self.fc = nn.Linear(lstm_units, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T, C]`` -> logits ``[B, num_classes]``."""
        x = self.convs(x)  # [B, filters, T', C]
        batch, filters, steps, channels = x.shape
        x = x.permute(0, 2, 1, 3).reshape(batch, steps, filters * channels)  # [B, T', filters*C]
        out, _ = self.lstm(self.dropout(x))  # [B, T', lstm_units]
        return self.fc(self.dropout(out[:, -1]))


@register_model
def deepconvlstm(window_steps: int, channels: int, num_classes: int, *, filters: int = 64,
                 kernel: int = 5, conv_layers: int = 4, lstm_units: int = 128,
                 lstm_layers: int = 2, dropout: float = 0.5) -> DeepConvLSTM:
    """DeepConvLSTM (Ordonez & Roggen 2016): 4 (5,1) time convs, 2-layer LSTM on the last step."""
    for option, value in (("filters", filters), ("kernel", kernel), ("conv_layers", conv_layers),
                          ("lstm_units", lstm_units), ("lstm_layers", lstm_layers)):
        check_int(option, value, 1)
    check_float("dropout", dropout, 0.0, 1.0)
    shrink = conv_layers * (kernel - 1)
    if window_steps <= shrink:
        raise HarError(f"window_steps={window_steps} is too short: {conv_layers} convolutions "
                       f"with kernel {kernel} need at least {shrink + 1} steps; use longer windows")
    return DeepConvLSTM(channels, num_classes, filters, kernel, conv_layers, lstm_units,
                        lstm_layers, dropout)
