"""IRC adapter: mirror Scalar channels to IRC channels, both ways (design.md §3)."""

from .adapter import IrcAdapter

__all__ = ["IrcAdapter"]
