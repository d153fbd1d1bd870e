"""The layers: each a thin Module over an ``engine.nn.functional`` op."""
from engine.nn.modules.activation import ReLU, Sigmoid, Tanh
from engine.nn.modules.adaptive_pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d
from engine.nn.modules.container import Flatten, ModuleList, Sequential
from engine.nn.modules.conv import Conv2d
from engine.nn.modules.dropout import Dropout
from engine.nn.modules.lazy import LazyBatchNorm1d, LazyBatchNorm2d, LazyConv2d, LazyLinear, UninitializedParameter
from engine.nn.modules.linear import Linear
from engine.nn.modules.loss import CrossEntropyLoss, MSELoss
from engine.nn.modules.normalization import BatchNorm1d, BatchNorm2d
from engine.nn.modules.pooling import AvgPool2d, MaxPool2d

__all__ = ["AvgPool2d", "Conv2d", "CrossEntropyLoss", "Flatten", "Linear", "MaxPool2d", "MSELoss", "ReLU",
           "Sequential", "Sigmoid", "Tanh",
           # modern CNNs
           "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "BatchNorm1d", "BatchNorm2d", "Dropout", "LazyBatchNorm1d",
           "LazyBatchNorm2d", "LazyConv2d", "LazyLinear", "ModuleList", "UninitializedParameter"]
