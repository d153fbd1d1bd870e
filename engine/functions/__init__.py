"""One module per op family; each op is a Function subclass with forward and backward side by side."""
