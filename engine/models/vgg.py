"""VGG-11 (d2l 8.2): five VGG blocks of 3x3 convolutions, each halving the resolution."""
from engine import nn

VGG11 = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))  # (convolutions, channels) per block


def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    """``num_convs`` 3x3 convolutions (padding 1) with ReLU, then 2x2 max pooling."""
    layers = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def vgg11(num_classes: int = 10, in_channels: int = 1, arch=VGG11) -> nn.Sequential:
    """VGG with blocks ``arch`` (VGG-11 by default) and three linear layers with dropout 0.5.

    Input (N, in_channels, 224, 224) in the book; any multiple of 32 works (the first Linear is lazy).
    """
    blocks = []
    for num_convs, channels in arch:
        blocks.append(vgg_block(num_convs, in_channels, channels))
        in_channels = channels
    return nn.Sequential(
        *blocks, nn.Flatten(),
        nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(0.5),
        nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(0.5),
        nn.LazyLinear(num_classes))
