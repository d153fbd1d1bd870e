"""``engine.models``: the networks of d2l's CNN chapters as functions with torchvision-like names.

Each takes ``num_classes`` (and ``in_channels``, 1 for FashionMNIST) and returns a Module; the
docstrings give the input size the book trains it at. Each file imports only ``engine``,
``engine.nn`` and ``engine.nn.functional``, so the same code with ``torch`` imports builds torch's
twin (the zoo tests do exactly that).
"""
from engine.models.alexnet import alexnet
from engine.models.densenet import densenet
from engine.models.googlenet import googlenet
from engine.models.lenet_bn import lenet_bn
from engine.models.nin import nin
from engine.models.resnet import resnet18
from engine.models.vgg import vgg11

__all__ = ["alexnet", "densenet", "googlenet", "lenet_bn", "nin", "resnet18", "vgg11"]
