"""A real Synapse homeserver for integration tests.

Synapse lives in its own venv (``scripts/ensure-synapse``; ``SYNAPSE_VENV``,
default ``.cache/synapse-venv`` under the repo root). Each :class:`Synapse`
owns one directory holding everything it writes: ``homeserver.yaml``, the log
config, the signing key, the SQLite database, the media store, the log
(``homeserver.log``) and the process's own stdout/stderr (``synapse.out``).

Generating a config with Synapse takes about a second, so it is done once
(:meth:`SynapseTemplate.generate`) and the secrets and signing key of that
template are copied into every further instance, whose ``homeserver.yaml`` is
then written directly with all paths inside its own directory.

The server listens on 127.0.0.1 only, on a free port chosen once and kept
across :meth:`Synapse.stop` / :meth:`Synapse.start` (and :meth:`Synapse.restart`),
which also keep the data: a restarted server knows its users and rooms.
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import yaml

from .process import free_port, stop_process, tail

__all__ = [
    "GENEROUS",
    "REPO_ROOT",
    "RateLimit",
    "Synapse",
    "SynapseError",
    "SynapseTemplate",
    "generous_rate_limits",
    "synapse_venv",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_NAME = "localhost"
READY_PATH = "/_matrix/client/versions"
_ENV_DROP = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH")


class SynapseError(RuntimeError):
    """Synapse could not be installed, configured, started or driven."""


@dataclass(frozen=True)
class RateLimit:
    """One Synapse rate-limit bucket: ``per_second`` refill, ``burst_count`` size."""

    per_second: float
    burst_count: int

    def as_config(self) -> dict[str, float | int]:
        return {"per_second": self.per_second, "burst_count": self.burst_count}


GENEROUS = RateLimit(per_second=1000, burst_count=1000)


def generous_rate_limits() -> dict[str, Any]:
    """Every client-facing limit of Synapse 1.16x raised out of the way.

    The recipe's set (message, login, registration, joins, invites) plus the
    ones that otherwise bite tests creating many rooms, joins or profile
    changes quickly (``rc_room_creation`` defaults to 10 then one per minute).
    """
    g = GENEROUS.as_config()
    return {
        "rc_message": dict(g),
        "rc_login": {"address": dict(g), "account": dict(g), "failed_attempts": dict(g)},
        "rc_registration": dict(g),
        "rc_registration_token_validity": dict(g),
        "rc_joins": {"local": dict(g), "remote": dict(g)},
        "rc_joins_per_room": dict(g),
        "rc_invites": {"per_room": dict(g), "per_user": dict(g), "per_issuer": dict(g)},
        "rc_third_party_invite": dict(g),
        "rc_room_creation": dict(g),
        "rc_presence": {"per_user": dict(g)},
        "rc_profile": dict(g),
        "rc_media_create": dict(g),
        "rc_delayed_event_mgmt": dict(g),
        "rc_3pid_validation": dict(g),
        "rc_key_requests": dict(g),
        "rc_user_directory": dict(g),
        "rc_reports": dict(g),
        "rc_admin_redaction": dict(g),
    }


def synapse_venv() -> Path:
    """The Synapse venv: ``$SYNAPSE_VENV`` (relative to the repo root) or the default."""
    raw = os.environ.get("SYNAPSE_VENV") or ".cache/synapse-venv"
    path = Path(raw)
    return path if path.is_absolute() else REPO_ROOT / path


def _checked_venv(venv: Path | None) -> Path:
    venv = venv if venv is not None else synapse_venv()
    if not (venv / "bin" / "python").exists():
        raise SynapseError(
            f"no Synapse venv at {venv}: run scripts/ensure-synapse "
            "(or set SYNAPSE_VENV to an existing one)"
        )
    return venv


def _child_env() -> dict[str, str]:
    """Our environment minus what would leak the test interpreter into Synapse's."""
    return {k: v for k, v in os.environ.items() if k not in _ENV_DROP}


# Runs Synapse as ``python -m synapse.app.homeserver`` would, after asking the
# kernel for SIGTERM when the process that started it dies (PR_SET_PDEATHSIG),
# so a crashed or SIGKILLed pytest leaves no homeserver behind. Done in the
# child's own interpreter rather than with ``preexec_fn`` (unsafe with threads).
# argv: [-c, PARENT_PID, synapse args...]
_BOOTSTRAP = """\
import ctypes, os, runpy, signal, sys
parent = int(sys.argv.pop(1))
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
except Exception:
    pass
if os.getppid() != parent:
    sys.exit("synapse bootstrap: parent process already gone")
sys.argv[0] = "synapse.app.homeserver"
runpy.run_module("synapse.app.homeserver", run_name="__main__", alter_sys=True)
"""


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``extra``; nested mappings are merged, not replaced."""
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping):
            out[key] = _deep_merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise SynapseError(f"{path}: expected a YAML mapping")
    return data


@dataclass(frozen=True)
class SynapseTemplate:
    """A config generated once by Synapse itself; instances copy its secrets and key."""

    directory: Path
    venv: Path
    server_name: str
    config: Mapping[str, Any]
    log_config: Mapping[str, Any]
    signing_key: Path

    @classmethod
    def generate(
        cls, directory: Path, *, venv: Path | None = None, server_name: str = SERVER_NAME
    ) -> SynapseTemplate:
        """Run ``synapse.app.homeserver --generate-config`` into ``directory`` (~1 s)."""
        venv = _checked_venv(venv)
        directory = directory.resolve()
        directory.mkdir(parents=True, exist_ok=True)
        config_path = directory / "homeserver.yaml"
        if not config_path.exists():
            proc = subprocess.run(
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "synapse.app.homeserver",
                    "--server-name",
                    server_name,
                    "--config-path",
                    str(config_path),
                    "--data-directory",
                    str(directory),
                    "--generate-config",
                    "--report-stats=no",
                ],
                cwd=directory,
                env=_child_env(),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if proc.returncode != 0:
                raise SynapseError(
                    f"generating the Synapse config failed (rc={proc.returncode}):\n"
                    f"{proc.stdout}\n{proc.stderr}"
                )
        return cls.load(directory, venv=venv)

    @classmethod
    def load(cls, directory: Path, *, venv: Path | None = None) -> SynapseTemplate:
        """A template generated earlier into ``directory``."""
        venv = _checked_venv(venv)
        directory = directory.resolve()
        config = _load_yaml(directory / "homeserver.yaml")
        server_name = str(config["server_name"])
        log_config = _load_yaml(Path(config["log_config"]))
        signing_key = Path(config["signing_key_path"])
        if not signing_key.exists():
            raise SynapseError(f"template {directory}: no signing key at {signing_key}")
        return cls(directory, venv, server_name, config, log_config, signing_key)


class Synapse:
    """One Synapse process with its config and data in ``directory``.

    The config is written by the constructor; nothing runs until :meth:`start`.
    Use as a context manager (``with Synapse(d) as hs:``) to start and stop.

    The process gets SIGTERM when the *thread* that started it ends (Linux
    PR_SET_PDEATHSIG, so a killed pytest leaves no server behind): call
    :meth:`start` / :meth:`start_async` from the main thread or the event
    loop's, never through ``asyncio.to_thread`` or a short-lived thread.
    """

    def __init__(
        self,
        directory: Path,
        *,
        template: SynapseTemplate | None = None,
        venv: Path | None = None,
        rc_message: RateLimit | None = None,
        extra_config: Mapping[str, Any] | None = None,
        port: int | None = None,
        log_level: str = "WARNING",
        startup_timeout: float = 30.0,
    ) -> None:
        self.directory = directory.resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        if template is None:
            template = SynapseTemplate.generate(self.directory / "template", venv=venv)
        self.template = template
        self.venv = _checked_venv(venv if venv is not None else template.venv)
        self.rc_message = rc_message
        self.extra_config: dict[str, Any] = dict(extra_config or {})
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self._auto_port = port is None
        self._port = port if port is not None else free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        self._out_offset = 0
        self.starts = 0
        self._write_config()

    # -- paths and addresses -------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.directory / "homeserver.yaml"

    @property
    def log_config_path(self) -> Path:
        return self.directory / "log.config"

    @property
    def log_path(self) -> Path:
        """Synapse's own log (level ``log_level``, default WARNING)."""
        return self.directory / "homeserver.log"

    @property
    def output_path(self) -> Path:
        """The process's stdout and stderr, appended across restarts."""
        return self.directory / "synapse.out"

    @property
    def database_path(self) -> Path:
        return self.directory / "homeserver.db"

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """Client-server API base URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def server_name(self) -> str:
        return self.template.server_name

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        """Whether the process is alive (a method, so mypy does not narrow it)."""
        return self._proc is not None and self._proc.poll() is None

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    # -- config ----------------------------------------------------------------

    def _write_config(self) -> None:
        d = self.directory
        key = d / f"{self.server_name}.signing.key"
        if not key.exists():
            shutil.copyfile(self.template.signing_key, key)
            key.chmod(0o600)

        log_config = copy.deepcopy(dict(self.template.log_config))
        handlers = log_config.setdefault("handlers", {})
        handlers.setdefault("file", {})["filename"] = str(self.log_path)
        for logger in log_config.get("loggers", {}).values():
            logger["level"] = self.log_level
        log_config.setdefault("root", {})["level"] = self.log_level
        self.log_config_path.write_text(yaml.safe_dump(log_config), encoding="utf-8")

        base = copy.deepcopy(dict(self.template.config))
        base.update(
            {
                "server_name": self.server_name,
                "pid_file": str(d / "homeserver.pid"),
                "listeners": [
                    {
                        "port": self._port,
                        "bind_addresses": ["127.0.0.1"],
                        "type": "http",
                        "tls": False,
                        "x_forwarded": False,
                        "resources": [{"names": ["client"], "compress": False}],
                    }
                ],
                "database": {"name": "sqlite3", "args": {"database": str(self.database_path)}},
                "log_config": str(self.log_config_path),
                "media_store_path": str(d / "media_store"),
                "signing_key_path": str(key),
                "report_stats": False,
                "trusted_key_servers": [],
                "suppress_key_server_warning": True,
                "federation_domain_whitelist": [],
                # Password hashing at the default 12 rounds costs ~0.25 s per
                # registration and per login; 4 is plenty for throwaway users.
                "bcrypt_rounds": 4,
            }
        )
        config = _deep_merge(base, generous_rate_limits())
        if self.rc_message is not None:
            config["rc_message"] = self.rc_message.as_config()
        config = _deep_merge(config, self.extra_config)
        self.config_path.write_text(
            "# Written by tests/servers/synapse.py\n" + yaml.safe_dump(config), encoding="utf-8"
        )

    @property
    def config(self) -> dict[str, Any]:
        """The ``homeserver.yaml`` as written."""
        return _load_yaml(self.config_path)

    # -- process ---------------------------------------------------------------

    def _spawn(self) -> None:
        if self.is_running():
            raise SynapseError(f"Synapse already running (pid {self.pid})")
        self._close_output()
        self._out = self.output_path.open("ab")
        self._out_offset = self._out.tell()
        self._out.write(f"--- start #{self.starts + 1} on port {self._port}\n".encode())
        self._out.flush()
        self._proc = subprocess.Popen(
            [
                str(self.venv / "bin" / "python"),
                "-c",
                _BOOTSTRAP,
                str(os.getpid()),
                "-c",
                str(self.config_path),
            ],
            cwd=self.directory,
            env=_child_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1

    def _probe(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + READY_PATH, timeout=1.0) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def _early_exit_should_retry(self, first_start: bool) -> bool:
        """After a failed first start on an auto-picked port that someone took: retry."""
        if not (first_start and self._auto_port):
            return False
        with self.output_path.open("rb") as out:
            out.seek(self._out_offset)
            if b"Address already in use" not in out.read():
                return False
        self._port = free_port()
        self._write_config()
        return True

    def _failure(self, what: str) -> SynapseError:
        return SynapseError(
            f"Synapse {what} ({self.url}, dir {self.directory})\n"
            f"--- {self.output_path.name} (tail):\n{tail(self.output_path, 60)}\n"
            f"--- {self.log_path.name} (tail):\n{tail(self.log_path, 60)}"
        )

    def start(self) -> None:
        """Start and block until the client API answers (up to ``startup_timeout``)."""
        first_start = self.starts == 0
        for _attempt in range(5):
            self._spawn()
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline:
                # Alive after the probe: the answer came from our process.
                if self._probe() and self.is_running():
                    return
                if not self.is_running():
                    break
                time.sleep(0.05)
            else:
                self.stop()
                raise self._failure(f"not ready after {self.startup_timeout:.0f} s")
            self.stop()
            if not self._early_exit_should_retry(first_start):
                raise self._failure("exited during start-up")
        raise self._failure("could not find a free port")

    async def start_async(self) -> None:
        """Like :meth:`start` but waits without blocking the event loop.

        The process is spawned from the calling (event-loop) thread.
        """
        first_start = self.starts == 0
        for _attempt in range(5):
            self._spawn()
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline:
                if await asyncio.to_thread(self._probe) and self.is_running():
                    return
                if not self.is_running():
                    break
                await asyncio.sleep(0.05)
            else:
                await self.stop_async()
                raise self._failure(f"not ready after {self.startup_timeout:.0f} s")
            await self.stop_async()
            if not self._early_exit_should_retry(first_start):
                raise self._failure("exited during start-up")
        raise self._failure("could not find a free port")

    def stop(self, kill_after: float = 10.0) -> None:
        """SIGTERM by PID, SIGKILL after ``kill_after`` s. Data and port are kept."""
        if self._proc is not None:
            stop_process(self._proc, kill_after, kill_wait=kill_after)
        self._close_output()

    async def stop_async(self, kill_after: float = 10.0) -> None:
        await asyncio.to_thread(self.stop, kill_after)

    def kill(self) -> None:
        """SIGKILL at once (a crash, not a clean shutdown). Data and port are kept."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        self._close_output()

    def restart(self) -> None:
        """Stop, then start again on the same port with the same data."""
        self.stop()
        self.start()

    async def restart_async(self) -> None:
        await self.stop_async()
        await self.start_async()

    def _close_output(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running() else "stopped"
        return f"<Synapse {self.url} {state} dir={self.directory}>"

    # -- users -----------------------------------------------------------------

    def register_user(self, name: str, password: str, admin: bool = False) -> str:
        """Register ``@name:server_name`` with ``register_new_matrix_user``; return its ID.

        Uses the config's ``registration_shared_secret``, so it works with
        public registration disabled. The server must be running.
        """
        proc = subprocess.run(
            [
                str(self.venv / "bin" / "register_new_matrix_user"),
                "-c",
                str(self.config_path),
                "-u",
                name,
                "-p",
                password,
                "--admin" if admin else "--no-admin",
                self.url,
            ],
            env=_child_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise SynapseError(
                f"register_new_matrix_user {name!r} failed (rc={proc.returncode}):\n"
                f"{proc.stdout}{proc.stderr}"
            )
        return self.user_id(name)

    async def register_user_async(self, name: str, password: str, admin: bool = False) -> str:
        return await asyncio.to_thread(self.register_user, name, password, admin)

    def logtail(self, lines: int = 100) -> str:
        return tail(self.log_path, lines)
