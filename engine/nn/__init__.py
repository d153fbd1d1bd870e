"""``engine.nn``: Module, Parameter, the layers, ``functional`` and ``init``."""
from engine.nn import functional, init
from engine.nn.module import Module
from engine.nn.modules import (AvgPool2d, Conv2d, CrossEntropyLoss, Flatten, Linear, MaxPool2d, MSELoss, ReLU,
                               Sequential, Sigmoid, Tanh)
from engine.nn.parameter import Parameter

__all__ = ["functional", "init", "Module", "Parameter", "AvgPool2d", "Conv2d", "CrossEntropyLoss", "Flatten",
           "Linear", "MaxPool2d", "MSELoss", "ReLU", "Sequential", "Sigmoid", "Tanh"]
