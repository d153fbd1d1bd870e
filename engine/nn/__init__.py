"""``engine.nn``: Module, Parameter, the layers, ``functional`` and ``init``."""
from engine.nn import functional, init
from engine.nn.module import Module
from engine.nn.modules import (AvgPool2d, Conv2d, CrossEntropyLoss, Flatten, Linear, MaxPool2d, MSELoss, ReLU,
                               Sequential, Sigmoid, Tanh)
from engine.nn.modules import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, BatchNorm1d, BatchNorm2d, Dropout,  # noqa: E402
                               LazyBatchNorm1d, LazyBatchNorm2d, LazyConv2d, LazyLinear, ModuleList,
                               UninitializedParameter)
from engine.nn.parameter import Parameter

__all__ = ["functional", "init", "Module", "Parameter", "AvgPool2d", "Conv2d", "CrossEntropyLoss", "Flatten",
           "Linear", "MaxPool2d", "MSELoss", "ReLU", "Sequential", "Sigmoid", "Tanh",
           # modern CNNs
           "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "BatchNorm1d", "BatchNorm2d", "Dropout", "LazyBatchNorm1d",
           "LazyBatchNorm2d", "LazyConv2d", "LazyLinear", "ModuleList", "UninitializedParameter"]
