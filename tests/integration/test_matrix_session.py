"""Matrix adapter credentials: one password login, a saved token reused, revocation."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
from nio import AsyncClient, DevicesResponse, LoginResponse

from bridgehost.testing import running
from tests.servers.synapse import Synapse
from tests.servers.synapse_fixtures import MatrixUsers

from .matrix_helpers import (
    BOT_PASSWORD,
    adapter,
    overrides,
    private_room,
    register_bot,
    scalar_events,
    send,
    wait_for,
    wait_up,
)

pytestmark = pytest.mark.synapse


async def devices_of(server: Synapse, user_id: str, device_id: str, token: str) -> list[str]:
    client = AsyncClient(server.url, user_id)
    client.restore_login(user_id, device_id, token)
    try:
        resp = await client.devices()
        assert isinstance(resp, DevicesResponse), resp
        return [d.id for d in resp.devices]
    finally:
        await client.close()


async def revoke(server: Synapse, user_id: str, device_id: str, token: str) -> None:
    client = AsyncClient(server.url, user_id)
    client.restore_login(user_id, device_id, token)
    try:
        await client.logout()
    finally:
        await client.close()


async def test_password_login_once_then_saved_session_reused_and_renewed(
    tmp_path: Path, matrix_users: MatrixUsers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    config = overrides(owner.server, bot, room_id)
    saved = tmp_path / "data" / "matrix-mx.json"

    async with running(tmp_path, config) as srv:
        mx = await wait_up(srv)
        assert mx.session.logins == 1
        device = mx.session.device_id
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    first = json.loads(saved.read_text())
    assert first["device_id"] == device and first["user_id"] == bot
    assert BOT_PASSWORD not in saved.read_text()

    # Second start: the saved token is used, no new login, no new device.
    async with running(tmp_path, config) as srv:
        mx = await wait_up(srv)
        assert (mx.session.logins, mx.session.device_id) == (0, device)
    assert json.loads(saved.read_text()) == first
    # (registration made one device of its own; the bridge adds exactly one)
    devices = await devices_of(owner.server, bot, device, first["access_token"])
    assert device in devices and len(devices) == 2

    # The token is revoked: one fresh password login, same device id, relay works.
    await revoke(owner.server, bot, device, first["access_token"])
    async with running(tmp_path, config) as srv:
        mx = await wait_up(srv)
        assert (mx.session.logins, mx.session.device_id) == (1, device)
        alice = await srv.client("alice")
        await alice.sub(srv.channel("room"))
        await send(owner, room_id, {"msgtype": "m.text", "body": "still bridged"})
        (event,) = await scalar_events(alice, 1)
        assert event.body == "still bridged"
    renewed = json.loads(saved.read_text())
    assert renewed["device_id"] == device
    assert renewed["access_token"] != first["access_token"]
    assert await devices_of(owner.server, bot, device, renewed["access_token"]) == devices

    for secret in (BOT_PASSWORD, first["access_token"], renewed["access_token"]):
        assert secret not in caplog.text


async def test_configured_access_token_is_used_as_given(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    login = AsyncClient(owner.server.url, bot)
    resp = await login.login(BOT_PASSWORD, device_name="made by hand")
    await login.close()
    assert isinstance(resp, LoginResponse)
    config = overrides(
        owner.server, bot, room_id, account={"password": None, "access_token": resp.access_token}
    )
    async with running(tmp_path, config) as srv:
        mx = await wait_up(srv)
        assert (mx.session.logins, mx.session.device_id) == (0, resp.device_id)
    assert not (tmp_path / "data" / "matrix-mx.json").exists()


async def test_revoked_token_without_password_is_a_clear_error(
    tmp_path: Path, matrix_users: MatrixUsers, caplog: pytest.LogCaptureFixture
) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    login = AsyncClient(owner.server.url, bot)
    resp = await login.login(BOT_PASSWORD)
    assert isinstance(resp, LoginResponse)
    await login.logout()
    await login.close()
    config = overrides(
        owner.server, bot, room_id, account={"password": None, "access_token": resp.access_token}
    )
    async with running(tmp_path, config) as srv:
        mx = adapter(srv)
        await wait_for(lambda: mx.status()[0].state == "auth failed", what="link failed")
        error = mx.status()[0].last_error or ""
        assert "access_token" in error and "rejected" in error and "M_UNKNOWN_TOKEN" in error
        assert mx.session.logins == 0
        assert resp.access_token not in caplog.text


async def test_token_revoked_while_running_means_one_new_login(
    tmp_path: Path, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    async with running(tmp_path, overrides(owner.server, bot, room_id)) as srv:
        mx = await wait_up(srv)
        saved = json.loads((tmp_path / "data" / "matrix-mx.json").read_text())
        alice = await srv.client("alice")
        channel = srv.channel("room")
        await alice.sub(channel)
        await revoke(owner.server, bot, saved["device_id"], saved["access_token"])
        await send(owner, room_id, {"msgtype": "m.text", "body": "one"})
        await send(owner, room_id, {"msgtype": "m.text", "body": "two"})
        got = await scalar_events(alice, 2, within=15)
        assert [e.body for e in got] == ["one", "two"]
        assert mx.session.logins == 2
        renewed = json.loads((tmp_path / "data" / "matrix-mx.json").read_text())
        assert renewed["access_token"] != saved["access_token"]
        assert renewed["device_id"] == saved["device_id"]
        await alice.publish(channel, "and back")
        await wait_for(lambda: mx.status()[0].relayed_out == 1, what="relayed to Matrix")
