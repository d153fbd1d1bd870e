"""Ready-made models: ``from engine.models import lenet``."""
from engine.models.lenet import lenet

__all__ = ["lenet"]
