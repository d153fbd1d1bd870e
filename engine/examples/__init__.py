"""Runnable examples: ``python -m engine.examples.edge_detection``."""
