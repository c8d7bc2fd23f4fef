"""protolib: find the few prototypical normal images an anomaly detector needs."""

__version__ = "0.1.0"
