"""``engine.models``: LeNet and the networks of d2l's CNN chapters, as functions with torchvision-like names.

Each takes ``num_classes`` (the d2l models also ``in_channels``, 1 for FashionMNIST) and returns a
Module; the docstrings give the input size the book trains it at. The d2l model files import only
``engine``, ``engine.nn`` and ``engine.nn.functional``, so the same code with ``torch`` imports
builds torch's twin (the zoo tests do exactly that).
"""
from engine.models.alexnet import alexnet
from engine.models.densenet import densenet
from engine.models.googlenet import googlenet
from engine.models.lenet import lenet
from engine.models.lenet_bn import lenet_bn
from engine.models.nin import nin
from engine.models.resnet import resnet18
from engine.models.vgg import vgg11

__all__ = ["alexnet", "densenet", "googlenet", "lenet", "lenet_bn", "nin", "resnet18", "vgg11"]
