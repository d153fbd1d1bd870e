"""LeNet-5 as the seed builds it (d2l 6.6): two convolution + pooling stages, three linear layers."""
from __future__ import annotations

from engine import nn

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}
POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}
CONV_ALGOS = ("auto", "im2col", "direct")


def lenet(num_classes: int = 10, activation: str = "sigmoid", pool: str = "avg",
          conv_algo: str = "auto") -> nn.Sequential:
    """LeNet-5: input (N, 1, 28, 28) -> logits (N, num_classes).

    conv 1->6 5x5 pad 2, act, pool 2 -> conv 6->16 5x5, act, pool 2 -> flatten (400)
    -> linear 120, act -> linear 84, act -> linear num_classes. ``activation``: 'sigmoid' (the
    seed's) or 'relu'; ``pool``: 'avg' (the seed's) or 'max'; ``conv_algo`` ('auto', 'im2col' or
    'direct') goes to both convolutions. Weights are Xavier-uniform (the seed's ``init_weights``);
    biases keep the layers' default initialisation, as in the seed.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"lenet: num_classes must be a positive int, got {num_classes!r}")
    for name, value, allowed in (("activation", activation, ACTIVATIONS), ("pool", pool, POOLS),
                                 ("conv_algo", conv_algo, CONV_ALGOS)):
        if value not in allowed:
            raise ValueError(f"lenet: {name} must be one of {', '.join(allowed)}, got {value!r}")
    act, pool_layer = ACTIVATIONS[activation], POOLS[pool]
    model = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2, algo=conv_algo), act(),
        pool_layer(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5, algo=conv_algo), act(),
        pool_layer(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), act(),
        nn.Linear(120, 84), act(),
        nn.Linear(84, num_classes),
    )
    model.apply(xavier_uniform_weights)
    return model


def xavier_uniform_weights(module) -> None:
    """Xavier-uniform weights for Linear and Conv2d layers (the seed's ``init_weights``)."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.xavier_uniform_(module.weight)
