"""The gradprom sidecar: PyTorch models, data and autograd behind a ZeroMQ ROUTER."""

PROTOCOL_VERSION = 1
__version__ = "0.1.0"
