"""Plugins as supervised processes (docs/plugins.md): any adapter in a process of
its own (`process: true`), any program as an adapter or bot (`command:`), each
with its Scalar session on its stdin and stdout (protocol §12).

The app runs them (`host`, one `supervisor` each); `child` is the
`bridgehost adapter` command; their configuration is `config.plugins`.
"""
