"""The CLI's view of its model: the first layers (for the figure) and the size."""
from __future__ import annotations

from engine import nn

ACTIVATIONS = (nn.ReLU, nn.Sigmoid, nn.Tanh)


def first_conv_and_activation(model: nn.Module):
    """The first convolution (depth first, in registration order) and the activation right after it in
    its container, or the identity when none follows it (e.g. a BatchNorm does): for the kernels figure."""
    found = _first_conv(model)
    if found is None:
        raise ValueError(f"{type(model).__name__} has no Conv2d: no kernels to draw")
    return found


def _first_conv(module: nn.Module):
    children = list(module.children())
    for i, child in enumerate(children):
        if isinstance(child, nn.Conv2d):
            after = children[i + 1] if i + 1 < len(children) else None
            return child, after if isinstance(after, ACTIVATIONS) else (lambda x: x)
        found = _first_conv(child)
        if found is not None:
            return found
    return None


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
