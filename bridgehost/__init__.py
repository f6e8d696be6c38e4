"""bridgehost: a self-hosted Scalar chat server with IRC/Matrix bridges and bots."""

__version__ = "0.1.0"
