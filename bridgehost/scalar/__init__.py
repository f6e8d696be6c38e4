"""The Scalar/1 protocol: sans-IO core (ids, wire, messages) and the asyncio server/client."""
