"""The builtin bots: ping, help, seen (entry points of `bridgehost.bots`)."""
