"""Matrix rooms <-> Scalar channels, with matrix-nio (see adapter.py)."""

from .adapter import MatrixAdapter

__all__ = ["MatrixAdapter"]
