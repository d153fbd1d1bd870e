"""The layers: each a thin Module over an ``engine.nn.functional`` op."""
from engine.nn.modules.activation import ReLU, Sigmoid, Tanh
from engine.nn.modules.container import Flatten, Sequential
from engine.nn.modules.conv import Conv2d
from engine.nn.modules.linear import Linear
from engine.nn.modules.loss import CrossEntropyLoss, MSELoss
from engine.nn.modules.pooling import AvgPool2d, MaxPool2d

__all__ = ["AvgPool2d", "Conv2d", "CrossEntropyLoss", "Flatten", "Linear", "MaxPool2d", "MSELoss", "ReLU",
           "Sequential", "Sigmoid", "Tanh"]
