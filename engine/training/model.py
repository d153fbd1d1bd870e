"""The seed's LeNet-5 (two conv + pool stages, three linear layers) with its options."""
from __future__ import annotations

from engine import nn

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}
POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


def build_lenet(activation: str = "sigmoid", pool: str = "avg", conv_algo: str = "auto") -> nn.Sequential:
    """LeNet-5 as in the seed (d2l 6.6): input (N, 1, 28, 28) -> logits (N, 10).

    conv 1->6 5x5 pad 2, act, pool 2 -> conv 6->16 5x5, act, pool 2 -> flatten (400)
    -> linear 120, act -> linear 84, act -> linear 10. Weights are Xavier-uniform
    (:func:`init_weights`); biases keep the layers' default initialisation, as in the seed.
    ``conv_algo`` ('auto', 'im2col' or 'direct') is passed to both convolutions.
    """
    act, pool_layer = ACTIVATIONS[activation], POOLS[pool]
    model = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2, algo=conv_algo), act(),
        pool_layer(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5, algo=conv_algo), act(),
        pool_layer(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(400, 120), act(),
        nn.Linear(120, 84), act(),
        nn.Linear(84, 10),
    )
    model.apply(init_weights)
    return model


def init_weights(module) -> None:
    """Xavier-uniform weights for Linear and Conv2d layers (the seed's ``init_weights``)."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.xavier_uniform_(module.weight)


def first_conv_and_activation(model: nn.Sequential):
    """The first convolution and the activation after it (for the kernels/feature-maps figure)."""
    return model[0], model[1]


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
