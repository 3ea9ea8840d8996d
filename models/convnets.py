"""Convolutional models: LeNet-5 (paper 1), MnistNet (paper 2), ResNet-20 (CIFAR users), and for 28x28 grey input a
small VGG-style net and ResNet-8."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LeNet5(nn.Module):
    """conv1 (5x5) -> ReLU -> maxpool 2 -> conv2 16 (5x5) -> ReLU -> maxpool 2 -> fc1 400->120 -> fc2 120->84 -> fc3.

    MNIST variant: 1 input channel, conv1 padding 2 (28x28 in). CIFAR-10 variant: 3 channels, no padding (32x32).
    Either way the flattened conv output is 16 x 5 x 5 = 400, the bound's n0.
    """

    def __init__(self, in_channels: int = 1, padding: int = 2, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=padding)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(inputs)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class MnistNet(nn.Module):
    """conv1 1->20 (5x5) -> ReLU -> maxpool 2 -> conv2 20->50 (5x5) -> ReLU -> maxpool 2 -> fc1 800->500 -> fc2."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(inputs)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class _Shortcut(nn.Module):
    """He et al.'s option A: subsample by ``stride`` and zero-pad the new channels (no parameters)."""

    def __init__(self, extra_channels: int, stride: int) -> None:
        super().__init__()
        self.extra_channels = extra_channels
        self.stride = stride

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[:, :, :: self.stride, :: self.stride]
        half = self.extra_channels // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = _Shortcut(channels - in_channels, stride)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(inputs)))
        x = self.bn2(self.conv2(x))
        return F.relu(x + self.shortcut(inputs))


class ResNet20(nn.Module):
    """ResNet-20 for 32x32 inputs (He et al. 2016): 3 stages of 3 basic blocks, 16/32/64 channels, ~0.27M weights.

    ``blocks`` per stage and ``in_channels`` make the family: ``ResNet20(blocks=1, in_channels=1)`` is ResNet-8 for
    28x28 grey input."""

    def __init__(self, classes: int = 10, blocks: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers = []
        in_channels = 16
        for stage, channels in enumerate((16, 32, 64)):
            blocks_of_stage = []
            for index in range(blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks_of_stage.append(BasicBlock(in_channels, channels, stride))
                in_channels = channels
            layers.append(nn.Sequential(*blocks_of_stage))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(inputs)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class VGGSmall(nn.Module):
    """A small VGG-style net for 28x28 grey input: [16, 16, pool, 32, 32, pool] 3x3 convs (padding 1), then
    fc 1568 -> 128 -> 10."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.conv3 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv4 = nn.Conv2d(32, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(inputs))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        x = F.max_pool2d(F.relu(self.conv4(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))
