"""TLS to InspIRCd (ssl_gnutls): certificates are verified unless told otherwise."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bridgehost.testing import running
from tests.servers.fixtures import IRCdFactory
from tests.servers.ircd import RawIRC, free_port

from .irc_helpers import bridge_config, irc_account, irc_adapter, statuses, wait_until

pytestmark = pytest.mark.ircd


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_verifies_certificates_with_ca_or_verify_false(
    tmp_path: Path, ircd_factory: IRCdFactory
) -> None:
    cert, key = _self_signed(tmp_path)
    tls_port = free_port()
    server = ircd_factory(
        extra_config=[
            '<module name="ssl_gnutls">',
            f'<sslprofile name="tls" provider="gnutls" certfile="{cert}" keyfile="{key}"'
            ' requestclientcert="no">',
            f'<bind address="127.0.0.1" port="{tls_port}" type="clients" sslprofile="tls">',
        ]
    )
    common = {"port": tls_port, "tls": True}
    overrides = bridge_config(
        {
            "strict": irc_account(server, "strict", **common),
            "trusted": irc_account(server, "trusted", ca=str(cert), **common),
            "lax": irc_account(server, "lax", verify=False, **common),
        },
        [
            ("s", [{"account": "strict", "target": "#s"}]),
            ("t", [{"account": "trusted", "target": "#t"}]),
            ("l", [{"account": "lax", "target": "#l"}]),
        ],
    )
    async with running(tmp_path, overrides) as srv, RawIRC(server.host, server.port, "u") as u:
        by_account = {s.account: s for s in statuses(srv)}
        await wait_until(
            lambda: (
                by_account["trusted"].state == "joined"
                and by_account["lax"].state == "joined"
                and by_account["strict"].last_error is not None
            ),
            15,
            "TLS outcomes",
        )
        assert "certificate" in (by_account["strict"].last_error or "")
        # it keeps retrying with backoff, so it is between attempts or in one, never joined
        assert by_account["strict"].state in ("disconnected", "connecting")
        conn = irc_adapter(srv, "trusted").conn
        assert conn is not None and conn.conn.transport.get_extra_info("ssl_object") is not None

        await u.connect()  # plain-text port of the same server
        await u.join("#t")
        await u.privmsg("#t", "over tls")
        alice = await srv.client("alice")
        await alice.sub(srv.channel("t"))
        await alice.publish(srv.channel("t"), "back over tls")
        line = await u.wait_for(lambda m: m.command == "PRIVMSG")
        assert (line.nick, line.trailing) == ("trusted", "<alice> back over tls")
