"""IRC adapter: mirror Scalar channels to IRC channels, both ways (design.md §3).

`config.py` (the account and its reader) imports no network code; the adapter
itself is imported only when the app starts one.
"""
