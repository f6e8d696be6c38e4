"""ii/sj-style file-system front end: see `adapter.py` for the directory layout."""

from .adapter import FsAdapter

__all__ = ["FsAdapter"]
