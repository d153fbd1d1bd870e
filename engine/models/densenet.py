"""DenseNet (d2l 8.7): dense blocks that concatenate every layer's output to its input."""
import engine
from engine import nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Batch norm, ReLU, 3x3 convolution (padding 1)."""
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(),
                         nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))


class DenseBlock(nn.Module):
    """``num_convs`` conv blocks, each adding ``growth_rate`` channels: out = in + num_convs * growth_rate."""

    def __init__(self, num_convs: int, in_channels: int, growth_rate: int):
        super().__init__()
        self.net = nn.Sequential(*[conv_block(in_channels + i * growth_rate, growth_rate) for i in range(num_convs)])
        self.out_channels = in_channels + num_convs * growth_rate

    def forward(self, x):
        for block in self.net:
            x = engine.cat((x, block(x)), dim=1)
        return x


def transition_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Batch norm, ReLU, 1x1 convolution to ``out_channels``, 2x2 average pooling (halves the size)."""
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(), nn.Conv2d(in_channels, out_channels, kernel_size=1),
                         nn.AvgPool2d(kernel_size=2, stride=2))


def densenet(num_classes: int = 10, in_channels: int = 1, growth_rate: int = 32, arch=(4, 4, 4, 4)) -> nn.Sequential:
    """DenseNet as in the book: four dense blocks with transitions halving the channels between them.

    Input (N, in_channels, 96, 96) in the book; any size from 32 works.
    """
    layers = [nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
              nn.MaxPool2d(kernel_size=3, stride=2, padding=1)]
    channels = 64
    for i, num_convs in enumerate(arch):
        block = DenseBlock(num_convs, channels, growth_rate)
        layers.append(block)
        channels = block.out_channels
        if i != len(arch) - 1:
            layers.append(transition_block(channels, channels // 2))
            channels //= 2
    layers += [nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
               nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)
