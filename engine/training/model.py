"""The CLI's view of its model: LeNet-5 from :mod:`engine.models`, its first layers, its size."""
from __future__ import annotations

from engine import nn
from engine.models import lenet


def build_lenet(activation: str = "sigmoid", pool: str = "avg", conv_algo: str = "auto") -> nn.Sequential:
    """``engine.models.lenet`` with 10 classes (FashionMNIST), the CLI's ``--activation/--pool/--conv-algo``."""
    return lenet(10, activation=activation, pool=pool, conv_algo=conv_algo)


def first_conv_and_activation(model: nn.Sequential):
    """The first convolution and the activation after it (for the kernels/feature-maps figure)."""
    return model[0], model[1]


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
