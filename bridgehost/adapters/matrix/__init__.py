"""Matrix rooms <-> Scalar channels, with matrix-nio (see adapter.py).

`config.py` (the account and its reader) imports no network code; the adapter
itself is imported only when the app starts one.
"""
