"""autocompress: hardware-aware AutoML search for compressed neural networks."""

__version__ = "0.1.0"
