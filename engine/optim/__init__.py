"""``engine.optim``: SGD and Adam with torch's update rules and state dicts."""
from engine.optim.adam import Adam
from engine.optim.optimizer import Optimizer
from engine.optim.sgd import SGD

__all__ = ["Adam", "Optimizer", "SGD"]
