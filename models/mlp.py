"""Multi-layer perceptrons: ``fc1 .. fcL`` linear layers with ReLU between them, no ReLU after the last."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """``x -> flatten -> fc1 -> ReLU -> ... -> fc{L-1} -> ReLU -> fcL`` (logits).

    Parameter names are ``fc{i}.weight`` / ``fc{i}.bias``, the names the allocation file uses.
    """

    def __init__(self, input_width: int, hidden: Sequence[int], classes: int) -> None:
        super().__init__()
        widths = [int(input_width), *(int(h) for h in hidden), int(classes)]
        self.depth = len(widths) - 1
        for index in range(self.depth):
            self.add_module(f"fc{index + 1}", nn.Linear(widths[index], widths[index + 1]))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = inputs.flatten(1)
        for index in range(1, self.depth + 1):
            hidden = getattr(self, f"fc{index}")(hidden)
            if index < self.depth:
                hidden = torch.relu(hidden)
        return hidden
