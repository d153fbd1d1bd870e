"""LeNet with batch normalisation after every convolution and hidden linear layer (d2l 8.5)."""
from engine import nn


def lenet_bn(num_classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """LeNet-5 with BatchNorm before each sigmoid. Input (N, in_channels, 28, 28) (FashionMNIST as is)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(16 * 4 * 4, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(),
        nn.Linear(84, num_classes))
