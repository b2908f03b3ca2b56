"""cnnbench: train registered CNN architectures under fixed seeds and compare them."""

__version__ = "0.1.0"
