"""ii/sj-style file-system front end: see `adapter.py` for the directory layout.

`config.py` (the account and its reader) imports no network code; the adapter
itself is imported only when the app starts one.
"""
