"""Listeners: tcp, tls (self-signed cert from the config), unix (mode 0600)."""

import os
import ssl
import stat
from pathlib import Path

import trustme

from bridgehost.scalar.client import connect
from bridgehost.testing import running


async def test_tls_listener_with_configured_cert(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    overrides = {
        "server": {
            "listen": ["tls://127.0.0.1:0"],
            "tls": {"cert": str(tmp_path / "server.pem"), "key": str(tmp_path / "server.pem")},
        }
    }
    async with running(tmp_path, overrides) as srv:
        assert srv.url.startswith("tls://127.0.0.1:")
        context = ssl.create_default_context()
        ca.configure_trust(context)
        client = await connect(srv.url, ssl_context=context)
        try:
            meta = await client.sub(srv.channel("secure"))
            assert meta.topic == "#secure@test.example"
            assert (await client.publish(meta.topic, "over tls")).seq == 1
        finally:
            await client.close()
        untrusted = ssl.create_default_context()
        try:
            await connect(srv.url, ssl_context=untrusted)
        except ssl.SSLError as exc:
            assert "CERTIFICATE_VERIFY_FAILED" in str(exc)
        else:
            raise AssertionError("a client that does not trust the CA must be refused")


async def test_unix_listener_is_private_by_default(tmp_path: Path) -> None:
    sock = tmp_path / "bh.sock"
    async with running(tmp_path, {"server": {"listen": [f"unix://{sock}"]}}) as srv:
        assert srv.url == f"unix://{sock}"
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        bot = await connect(
            srv.url, id="!plug@test.example", secret=await srv.token("!plug@test.example")
        )
        try:
            event = await bot.publish(srv.channel("local"), "from a plugin")
            assert event.sender == "!plug@test.example"
        finally:
            await bot.close()


async def test_several_listeners_share_one_hub(tmp_path: Path) -> None:
    sock = tmp_path / "bh.sock"
    overrides = {"server": {"listen": ["tcp://127.0.0.1:0", f"unix://{sock}"]}}
    async with running(tmp_path, overrides) as srv:
        tcp_client = await srv.client("alice")
        unix_client = await connect(f"unix://{sock}")
        try:
            lobby = srv.channel("lobby")
            await tcp_client.sub(lobby)
            await unix_client.sub(lobby)
            sent = await unix_client.publish(lobby, "hello from unix")
            assert await tcp_client.next_event(5) == sent
        finally:
            await unix_client.close()


async def test_data_dir_is_created_private(tmp_path: Path) -> None:
    async with running(tmp_path):
        mode = stat.S_IMODE(os.stat(tmp_path / "data").st_mode)
        assert mode == 0o700
        db_mode = stat.S_IMODE(os.stat(tmp_path / "data" / "bridgehost.sqlite3").st_mode)
        assert db_mode == 0o600
