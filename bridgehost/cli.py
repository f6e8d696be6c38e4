"""The `bridgehost` command (design.md §5). Exit codes: 0 ok, 1 runtime failure,
2 usage or configuration error."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import getpass
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from . import __version__
from .adapters.transcript import Transcript, escape_controls
from .config import Config, ConfigError, find_config
from .scalar import ids
from .scalar.auth import Authenticator, UserToken
from .scalar.client import Client, connect
from .scalar.errors import ScalarError
from .scalar.events import Event
from .scalar.store import Store, ensure_private_dir
from .web.status import STATUS_FILE

log = logging.getLogger("bridgehost")
T = TypeVar("T")

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
CLI_TOKEN_FILE = "cli-token"


def _setup_logging(verbose: int, *, child: bool = False) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose >= 0 else logging.WARNING
    # A child's stderr is read by its parent, which adds the time and the plugin's name.
    fmt = (
        "%(levelname)s %(name)s: %(message)s"
        if child
        else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.basicConfig(level=level, stream=sys.stderr, format=fmt)
    if verbose < 2:
        for noisy in ("aiosqlite", "nio", "irc.client", "irc.client_aio", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _run_loop(coro: Any) -> Any:
    try:
        import uvloop  # the `fast` extra

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


# --- commands -------------------------------------------------------------------------


async def _until_signal(main: Awaitable[T]) -> T | None:
    """Run `main` until it returns, or until SIGINT/SIGTERM cancels it (it closes
    cleanly) and this returns None: the one place signals are handled. A second
    signal while shutting down is ignored rather than cutting the shutdown short."""
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    assert me is not None
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        if not received:
            log.info("%s received: shutting down", sig.name)
            me.cancel()
        received.append(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await main
    except asyncio.CancelledError:
        if received and me.uncancel() == 0:
            return None
        raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def _serve(config: Config) -> None:
    from .app import App  # not imported by commands that do not run the server

    async with App.open(config):
        await asyncio.Future()  # serve until a signal cancels this


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    try:
        _run_loop(_until_signal(_serve(config)))
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return EXIT_FAIL
    except Exception:
        log.exception("bridgehost failed")
        return EXIT_FAIL
    return EXIT_OK


def cmd_check(config: Config, args: argparse.Namespace) -> int:
    where = config.path or "embedded default"
    from .adapters.spec import check_adapters
    from .bots.host import check_bots

    problems = check_adapters(config) + check_bots(config.bots)
    if problems:
        for problem in problems:
            print(f"config error: {problem}", file=sys.stderr)
        print(f"{len(problems)} problem(s) with adapters or bots", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"{where}: OK — domain {config.server.domain}, {len(config.server.listen)} listener(s), "
        f"{len(config.accounts)} account(s), {len(config.bridges)} bridge(s), "
        f"{len(config.bots)} bot(s)"
    )
    return EXIT_OK


@contextlib.asynccontextmanager
async def _authenticator(config: Config) -> AsyncIterator[Authenticator]:
    """Credentials in the data dir, for commands that run beside (or without) the server."""
    store = await Store.open(config.server.data_dir, keep=config.server.history_keep)
    auth = Authenticator(store, config.server.domain)
    try:
        yield auth
    finally:
        auth.close()
        await store.close()


def cmd_user_add(config: Config, args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if password != getpass.getpass("again: "):
            print("passwords differ", file=sys.stderr)
            return EXIT_USAGE

    async def add() -> str:
        async with _authenticator(config) as auth:
            return await auth.add_user(args.name, password, int(time.time() * 1000))

    try:
        ident = _run_loop(add())
    except (ValueError, ScalarError) as exc:
        print(f"bridgehost: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"user {ident} saved")
    return EXIT_OK


def cmd_token_create(config: Config, args: argparse.Namespace) -> int:
    async def create() -> tuple[str, str]:
        async with _authenticator(config) as auth:
            return await auth.create_token(args.id, int(time.time() * 1000))

    try:
        ident, token = _run_loop(create())
    except (ValueError, ScalarError) as exc:
        print(f"bridgehost: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"token for {ident} (shown once; only its hash is stored):", file=sys.stderr)
    print(token)
    return EXIT_OK


def cmd_token_list(config: Config, args: argparse.Namespace) -> int:
    async def listing() -> list[UserToken]:
        async with _authenticator(config) as auth:
            user = args.user
            if user and "@" not in user:
                user = f"{user}@{config.server.domain}"
            return await auth.user_tokens(user)

    tokens = _run_loop(listing())
    for t in tokens:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(t.created / 1000))
        used = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(t.last_used / 1000))
            if t.last_used
            else "never used      "
        )
        print(f"{t.id}  {t.user}  {created}  {used}  {t.label}")
    if not tokens:
        print("no user tokens", file=sys.stderr)
    return EXIT_OK


def cmd_token_revoke(config: Config, args: argparse.Namespace) -> int:
    async def revoke() -> UserToken | None:
        async with _authenticator(config) as auth:
            return await auth.revoke_user_token(args.token_id)

    revoked = _run_loop(revoke())
    if revoked is None:
        print(
            f"bridgehost: no user token {args.token_id!r} (see: bridgehost token list)",
            file=sys.stderr,
        )
        return EXIT_FAIL
    print(f"revoked {revoked.id} of {revoked.user} ({revoked.label})")
    return EXIT_OK


def _server_url(config: Config, explicit: str | None) -> str:
    if explicit:
        return explicit
    for url in config.server.listen:
        if url.startswith(("unix://", "tcp://")):
            return url.replace("tcp://0.0.0.0:", "tcp://127.0.0.1:").replace(
                "tcp://[::]:", "tcp://[::1]:"
            )
    return config.server.listen[0]


async def _cli_client(config: Config, args: argparse.Namespace) -> Client:
    """Connect as given (--id/--password), else as `!cli@domain` with a token kept in
    data_dir: whoever can read the data dir may act for the server owner."""
    url = _server_url(config, args.server)
    if args.id:
        secret = os.environ.get("BRIDGEHOST_PASSWORD") or getpass.getpass(f"secret for {args.id}: ")
        return await connect(url, id=args.id, secret=secret)
    if args.guest:
        return await connect(url)
    ident = f"!cli@{config.server.domain}"
    token_path = config.server.data_dir / CLI_TOKEN_FILE
    token = token_path.read_text().strip() if token_path.exists() else None
    if token is None:
        async with _authenticator(config) as auth:
            _, token = await auth.create_token(ident, int(time.time() * 1000))
        ensure_private_dir(config.server.data_dir)
        fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token)
    return await connect(url, id=ident, secret=token)


def format_event(event: Event, transcript: Transcript | None = None) -> str:
    """`YYYY-MM-DD HH:MM:SS <nick> body`, one line per body line (UTC); edits,
    reactions, deletions, topics and membership as `* nick ...` lines; control
    characters escaped (a remote network's body cannot drive the terminal)."""
    stamp = dt.datetime.fromtimestamp(event.time / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    lines = (transcript or Transcript()).lines(event)
    return "\n".join(f"{stamp} {escape_controls(line)}" for line in lines)


def cmd_say(config: Config, args: argparse.Namespace) -> int:
    async def say() -> Event:
        client = await _cli_client(config, args)
        try:
            topic = ids.normalise(args.topic)
            if ids.parse(topic).is_channel and not client.id.startswith("!"):
                await client.sub(topic)
            return await client.publish(topic, args.text, kind=args.kind, nick=args.nick)
        finally:
            await client.close()

    try:
        event = _run_loop(say())
    except (ScalarError, OSError) as exc:
        print(f"bridgehost: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(f"{event.topic} seq {event.seq}")
    return EXIT_OK


def cmd_tail(config: Config, args: argparse.Namespace) -> int:
    async def tail() -> None:
        client = await _cli_client(config, args)
        try:
            topic = ids.normalise(args.topic)
            meta = await client.sub(topic)
            transcript = Transcript()
            if args.history and meta.history:
                page = await client.catchup(topic, limit=args.history)
                for event in page.events:
                    print(format_event(event, transcript), flush=True)
            async for event in client:
                print(format_event(event, transcript), flush=True)
        finally:
            await client.close()

    try:
        _run_loop(tail())
    except KeyboardInterrupt:
        return EXIT_OK
    except (ScalarError, OSError) as exc:
        print(f"bridgehost: {exc}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def _status_over_http(config: Config) -> dict[str, Any] | None:
    """The running server's `GET /status`, or None when it does not answer."""
    http = config.http
    if http is None:
        return None
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(http.host, http.host)
    host = f"[{host}]" if ":" in host else host
    try:
        with urllib.request.urlopen(f"http://{host}:{http.port}/status", timeout=5) as resp:
            data = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cmd_status(config: Config, args: argparse.Namespace) -> int:
    """Over HTTP when `http` is configured (and answers), else from the status file."""
    status = _status_over_http(config)
    live = status is not None
    path = config.server.data_dir / STATUS_FILE
    if status is None:
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            print(f"bridgehost: no status at {path} (is bridgehost running?)", file=sys.stderr)
            return EXIT_FAIL
    if args.json:
        print(json.dumps(status, indent=2))
        return EXIT_OK
    alive = live or _pid_alive(int(status.get("pid", 0)))
    print(
        f"bridgehost pid {status.get('pid')} {'running' if alive else 'NOT running'}; "
        f"listening on {', '.join(status.get('listening', []))}; "
        f"{status.get('connections', 0)} connection(s)"
    )
    now = time.time()
    for link in status.get("links", []):
        print(
            f"  {link['account']}/{link['target']} <-> {link['channel']} [{link['direction']}]: "
            f"{link['state']}{_for(now, link.get('since'))}, "
            f"relayed in {link.get('relayed_in', 0)} / out {link.get('relayed_out', 0)}, "
            f"queued {link['queued']}, dropped {link['dropped']}"
        )
        if link.get("failing_since"):
            print(f"    failing{_for(now, link['failing_since'])}")
        if link.get("last_error"):
            print(f"    last error{_ago(now, link.get('last_error_time'))}: {link['last_error']}")
    for bot in status.get("bots", []):
        print(f"  bot {bot.get('id')}: {bot.get('state')}")
    for plugin in status.get("plugins", []):
        pid = f" pid {plugin['pid']}" if plugin.get("pid") else ""
        exited = f", last {plugin['last_exit']}" if plugin.get("last_exit") else ""
        print(
            f"  {plugin.get('kind')} {plugin.get('name')} ({plugin.get('id')}): "
            f"{plugin.get('state')}{pid}, {plugin.get('restarts', 0)} restart(s){exited}"
        )
        if plugin.get("state") == "failed" and plugin.get("last_error"):
            print(f"    {plugin['last_error']}")
    return EXIT_OK if alive else EXIT_FAIL


def _span(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _for(now: float, since: Any) -> str:
    return f" for {_span(now - float(since))}" if isinstance(since, int | float) and since else ""


def _ago(now: float, when: Any) -> str:
    return f" {_span(now - float(when))} ago" if isinstance(when, int | float) and when else ""


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_until_signal(main: Awaitable[int]) -> int:
    """Run a command's coroutine; SIGINT/SIGTERM stop it cleanly with exit code 0."""
    code = _run_loop(_until_signal(main))
    return EXIT_OK if code is None else int(code)


def cmd_adapter(config: Config, args: argparse.Namespace) -> int:
    from .plugins.child import main as child_main

    return child_main(config, args.name, _run_until_signal)


def cmd_bot(config: Config | None, args: argparse.Namespace) -> int:
    from .bots.remote import run_remote

    return _run_until_signal(run_remote(args))


# --- argument parsing ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bridgehost",
        description="Self-hosted Scalar chat server with IRC/Matrix bridges and bots.",
    )
    p.add_argument("--version", action="version", version=f"bridgehost {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        type=Path,
        help="config file (default: ./bridgehost.yaml, else the embedded default)",
    )
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    common.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    client = argparse.ArgumentParser(add_help=False)
    client.add_argument("--server", help="server URL (default: the config's first listener)")
    client.add_argument(
        "--id",
        help="log in as this ID (secret from $BRIDGEHOST_PASSWORD or a "
        "prompt); default: the local !cli ID",
    )
    client.add_argument("--guest", action="store_true", help="connect as a guest")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("run", parents=[common], help="run the server (the default command)")
    sub.add_parser("check", parents=[common], help="validate the config and exit")
    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    ua = user.add_parser("add", parents=[common], help="add a user or change its password")
    ua.add_argument("name", help="user name or ID (alice or alice@example.com)")
    ua.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    token = sub.add_parser("token", help="manage tokens").add_subparsers(
        dest="action", required=True
    )
    tc = token.add_parser("create", parents=[common], help="create a token for a reserved ID")
    tc.add_argument("id", help="reserved ID, e.g. '!mybot@example.com'")
    tl = token.add_parser(
        "list", parents=[common], help="list user tokens (browser logins), never the tokens"
    )
    tl.add_argument("user", nargs="?", help="only this user's (alice or alice@example.com)")
    tr = token.add_parser("revoke", parents=[common], help="revoke a user token")
    tr.add_argument("token_id", help="the id `token list` shows (or the token itself)")
    say = sub.add_parser("say", parents=[common, client], help="publish one message")
    say.add_argument("topic")
    say.add_argument("text")
    say.add_argument("--kind", default="text", choices=["text", "action", "notice"])
    say.add_argument("--nick", help="display name (reserved IDs only)")
    tail = sub.add_parser("tail", parents=[common, client], help="print a topic's messages")
    tail.add_argument("topic")
    tail.add_argument(
        "--history", type=int, default=0, metavar="N", help="first print the last N stored messages"
    )
    st = sub.add_parser("status", parents=[common], help="health of the running server's links")
    st.add_argument("--json", action="store_true")
    adapter = sub.add_parser(
        "adapter",
        parents=[common],
        help="run one account's adapter on a Scalar session on stdin/stdout "
        "(started by bridgehost for `process: true`; see docs/plugins.md)",
    )
    adapter.add_argument("name", help="the account's name in the config")
    bot = sub.add_parser("bot", help="run a bot out of process over the protocol")
    bot.add_argument("plugin", help="module:Class or an entry point name of bridgehost.bots")
    bot.add_argument("--server", required=True, help="server URL, e.g. tcp://127.0.0.1:7667")
    bot.add_argument("--id", required=True, help="the bot's reserved ID")
    bot.add_argument("--token", help="token (or $BRIDGEHOST_TOKEN)")
    bot.add_argument(
        "--topic", action="append", default=[], dest="topics", help="topic to join (repeat)"
    )
    bot.add_argument("--bot-config", type=Path, help="YAML file with the bot's config map")
    bot.add_argument("--data", type=Path, help="file for the bot's persistent store")
    bot.add_argument("--prefix", default="!", help="command prefix (default: !)")
    bot.add_argument(
        "--rate", type=float, default=2.0, help="messages per second it may publish (default: 2)"
    )
    bot.add_argument("--burst", type=int, default=5, help="burst before pacing (default: 5)")
    bot.add_argument(
        "--timeout", type=float, default=30.0, help="seconds a handler may run (default: 30)"
    )
    bot.add_argument("-v", "--verbose", action="count", default=0)
    return p


COMMANDS = {
    ("run", None): cmd_run,
    ("check", None): cmd_check,
    ("user", "add"): cmd_user_add,
    ("token", "create"): cmd_token_create,
    ("token", "list"): cmd_token_list,
    ("token", "revoke"): cmd_token_revoke,
    ("say", None): cmd_say,
    ("tail", None): cmd_tail,
    ("status", None): cmd_status,
    ("adapter", None): cmd_adapter,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "run")
    args = _parser().parse_args(argv)
    verbose = -1 if getattr(args, "quiet", False) else getattr(args, "verbose", 0)
    _setup_logging(verbose, child=args.command == "adapter")
    if args.command == "bot":
        return cmd_bot(None, args)
    try:
        config = find_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); nothing started", file=sys.stderr)
        return EXIT_USAGE
    handler = COMMANDS[(args.command, getattr(args, "action", None))]
    with contextlib.suppress(KeyboardInterrupt):
        return handler(config, args)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
