"""What ``python -m engine.train_lenet`` is made of: the model, the loop, checkpoints, logs, plots, progress."""
