"""The CLI's view of its model: the first layers (for the figure) and the size."""
from __future__ import annotations

from engine import nn


def first_conv_and_activation(model: nn.Sequential):
    """The first convolution and the activation after it (for the kernels/feature-maps figure)."""
    return model[0], model[1]


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
