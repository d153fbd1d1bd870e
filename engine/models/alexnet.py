"""AlexNet (d2l 8.1), sized for 10 classes as in the book."""
from engine import nn


def alexnet(num_classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """Five convolutions and three linear layers with dropout 0.5.

    Input (N, in_channels, 224, 224) in the book (FashionMNIST resized); any size from 63 works,
    since the first Linear is lazy: it takes its in_features at the first forward.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2), nn.Flatten(),
        nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.LazyLinear(num_classes))
