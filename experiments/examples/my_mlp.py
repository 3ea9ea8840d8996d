"""A model that is not in the registry, as a user would write it: three hidden ReLU layers with names of its own.

Used by the README's "Your own model" commands: ``--model experiments/examples/my_mlp.py:MyMLP``.
"""

import torch
from torch import nn


class MyMLP(nn.Module):
    """784 -> 256 -> 128 -> 64 -> 10, ReLU between the linear layers; ``encoder``, ``hidden.1``, ``bottleneck`` and
    ``head`` are its tensor names (the allocation file and every export use them)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(784, 256)
        self.hidden = nn.Sequential(nn.ReLU(), nn.Linear(256, 128), nn.ReLU())
        self.bottleneck = nn.Linear(128, 64)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.hidden(self.encoder(x.flatten(1)))
        return self.head(torch.relu(self.bottleneck(x)))
