"""YAML -> typed, validated config (design.md §2).

Every problem is collected with its YAML path before anything starts, so a
user fixes a config in one round: `bridges[0].links[1].account: unknown
account 'libra' (known: libera, home)`. `${ENV}` and `${file:PATH}` put
secrets in from outside the file; their values never appear in a message.

`model` holds the frozen dataclasses the program uses, `reader` the
problem-collecting YAML getters, `sections` the server section, `accounts`
the account types (each adapter reads its own section, found through the
`bridgehost.adapters` entry points), `load` bridges, bots and the whole
document.
"""

from .load import DEFAULT_FILE, EMBEDDED_DEFAULT, find_config, load_config, parse_config
from .model import (
    DIRECTIONS,
    Account,
    AccountKeys,
    BotConfig,
    Bridge,
    Config,
    ConfigError,
    Direction,
    Link,
    ServerConfig,
    TLSFiles,
)

__all__ = [
    "DEFAULT_FILE",
    "DIRECTIONS",
    "EMBEDDED_DEFAULT",
    "Account",
    "AccountKeys",
    "BotConfig",
    "Bridge",
    "Config",
    "ConfigError",
    "Direction",
    "Link",
    "ServerConfig",
    "TLSFiles",
    "find_config",
    "load_config",
    "parse_config",
]
