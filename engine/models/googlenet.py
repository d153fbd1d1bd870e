"""GoogLeNet (d2l 8.4): nine Inception blocks between a convolutional stem and global pooling."""
import engine
from engine import nn
from engine.nn import functional as F


class Inception(nn.Module):
    """Four parallel paths joined on channels: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max pool -> 1x1.

    Output channels: c1 + c2[1] + c3[1] + c4; the spatial size is kept.
    """

    def __init__(self, in_channels: int, c1: int, c2, c3, c4: int):
        super().__init__()
        self.b1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.b2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.b2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.b3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.b3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.b4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.b4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)
        self.out_channels = c1 + c2[1] + c3[1] + c4

    def forward(self, x):
        b1 = F.relu(self.b1_1(x))
        b2 = F.relu(self.b2_2(F.relu(self.b2_1(x))))
        b3 = F.relu(self.b3_2(F.relu(self.b3_1(x))))
        b4 = F.relu(self.b4_2(self.b4_1(x)))
        return engine.cat((b1, b2, b3, b4), dim=1)


def _inceptions(in_channels, specs):
    blocks = []
    for spec in specs:
        blocks.append(Inception(in_channels, *spec))
        in_channels = blocks[-1].out_channels
    return blocks, in_channels


def googlenet(num_classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """GoogLeNet as in the book. Input (N, in_channels, 96, 96) in the book; any size from 32 works."""
    stem = nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
        nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b3, c = _inceptions(192, [(64, (96, 128), (16, 32), 32), (128, (128, 192), (32, 96), 64)])
    b4, c = _inceptions(c, [(192, (96, 208), (16, 48), 64), (160, (112, 224), (24, 64), 64),
                            (128, (128, 256), (24, 64), 64), (112, (144, 288), (32, 64), 64),
                            (256, (160, 320), (32, 128), 128)])
    b5, c = _inceptions(c, [(256, (160, 320), (32, 128), 128), (384, (192, 384), (48, 128), 128)])
    return nn.Sequential(
        stem,
        nn.Sequential(*b3, nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        nn.Sequential(*b4, nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        nn.Sequential(*b5, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten()),
        nn.Linear(c, num_classes))
