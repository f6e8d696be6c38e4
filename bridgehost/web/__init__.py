"""The HTTP side (design.md §6): metrics, health, status page, long-message and
media links, and Scalar over WebSocket with the browser client.

Kept free of imports so that `bridgehost.web.config` can be read while the
config package loads; the server lives in `bridgehost.web.server`.
"""
