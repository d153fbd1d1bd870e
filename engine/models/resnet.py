"""ResNet-18 (d2l 8.6): residual blocks of two 3x3 convolutions with batch norm."""
from engine import nn
from engine.nn import functional as F


class Residual(nn.Module):
    """y = relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)); the shortcut is a strided 1x1 convolution
    when ``use_1x1conv`` (channels or resolution change), else the identity."""

    def __init__(self, in_channels: int, out_channels: int, use_1x1conv: bool = False, strides: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.conv3 is not None:
            x = self.conv3(x)
        y += x  # in place, as the book writes it (autograd records it: bn2's output is not saved by anyone)
        return F.relu(y)


def resnet_stage(in_channels: int, out_channels: int, num_residuals: int, first_stage: bool = False):
    """``num_residuals`` blocks; all but the first stage halve the resolution in their first block."""
    blocks = []
    for i in range(num_residuals):
        if i == 0 and not first_stage:
            blocks.append(Residual(in_channels, out_channels, use_1x1conv=True, strides=2))
        else:
            blocks.append(Residual(out_channels if i else in_channels, out_channels))
    return nn.Sequential(*blocks)


def resnet18(num_classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """ResNet-18 as in the book. Input (N, in_channels, 96, 96) in the book; any size from 32 works."""
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
                      nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        resnet_stage(64, 64, 2, first_stage=True),
        resnet_stage(64, 128, 2),
        resnet_stage(128, 256, 2),
        resnet_stage(256, 512, 2),
        nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, num_classes)))
