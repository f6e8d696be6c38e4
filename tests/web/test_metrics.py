"""/metrics: Prometheus text from live state, one registry per app."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridgehost.scalar.client import connect
from bridgehost.scalar.errors import ScalarError
from tests.integration.irc_helpers import irc_account, wait_joined, wait_until
from tests.integration.matrix_helpers import (
    overrides,
    private_room,
    register_bot,
    send,
    wait_room_messages,
    wait_up,
)
from tests.servers.ircd import InspIRCd, RawIRC
from tests.servers.synapse_fixtures import MatrixUsers
from tests.web.helpers import get, web_app


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def key(name: str, labels: dict[str, str], **more: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted({**labels, **more}.items()))


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, body, headers = await get(url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    return samples(body)


async def test_counters_move_and_apps_do_not_share_them(tmp_path: Path) -> None:
    async with (
        web_app(tmp_path / "a", {"server": {"limits": {"rate": 1, "burst": 2}}}) as (srv, url),
        web_app(tmp_path / "b") as (_, other_url),
    ):
        before = await scrape(url)
        assert before[("bridgehost_events_published_total", ())] == 0
        assert before[("bridgehost_failed_idents_total", ())] == 0
        alice = await srv.client("alice")
        bob = await srv.client("bob")
        guest = await srv.client()
        lobby = srv.channel("lobby")
        for c in (bob, alice, guest):  # bob's sub makes the channel: it spends his token
            await c.sub(lobby)
        await alice.publish(lobby, "one")
        await alice.publish(lobby, "two")
        with pytest.raises(ScalarError) as err:
            await alice.publish(lobby, "three: over the rate limit")
        assert err.value.code == "rate-limited"
        with pytest.raises(ScalarError):
            await connect(srv.url, id=srv.user("alice"), secret="wrong")
        after = await scrape(url)
        assert after[("bridgehost_events_published_total", ())] == 2
        assert after[("bridgehost_events_delivered_total", ())] == 4  # 2 events x 2 others
        assert after[("bridgehost_rate_limited_requests_total", ())] == 1
        assert after[("bridgehost_failed_idents_total", ())] == 1
        assert after[("bridgehost_connections", (("kind", "user"),))] == 2
        assert after[("bridgehost_connections", (("kind", "guest"),))] == 1
        assert after[("bridgehost_channels", ())] == 1
        assert after[("bridgehost_commit_latency_seconds_count", ())] >= 1
        assert after[("bridgehost_commit_latency_seconds_bucket", (("le", "+Inf"),))] >= 1
        assert ("process_resident_memory_bytes", ()) in after
        untouched = await scrape(other_url)
        assert untouched[("bridgehost_events_published_total", ())] == 0
        assert untouched[("bridgehost_connections", (("kind", "user"),))] == 0


@pytest.mark.ircd
@pytest.mark.synapse
async def test_link_counters_move_through_real_irc_and_matrix(
    tmp_path: Path, ircd: InspIRCd, matrix_users: MatrixUsers
) -> None:
    owner = await matrix_users.new("owner")
    bot = await register_bot(owner.server)
    room_id = await private_room(owner, bot)
    config = overrides(owner.server, bot, room_id)
    config["accounts"]["net"] = irc_account(ircd)
    config["bridges"][0]["links"].append({"account": "net", "target": "#room"})
    irc_labels = {
        "account": "net",
        "channel": "#room@test.example",
        "direction": "both",
        "target": "#room",
    }
    mx_labels = {**irc_labels, "account": "mx", "target": room_id}
    async with (
        web_app(tmp_path, config) as (srv, url),
        RawIRC(ircd.host, ircd.port, "alice") as irc,
    ):
        await irc.connect()
        await irc.join("#room")
        await wait_up(srv)
        await wait_joined(srv)
        before = await scrape(url)
        for labels in (irc_labels, mx_labels):
            assert before[key("bridgehost_link_state", labels, state="joined")] == 1
            assert before[key("bridgehost_link_state", labels, state="disconnected")] == 0
            assert before[key("bridgehost_link_relayed_in_total", labels)] == 0
            assert before[key("bridgehost_link_relayed_out_total", labels)] == 0
        published = before[("bridgehost_events_published_total", ())]

        await irc.privmsg("#room", "from irc")
        await wait_room_messages(
            owner.client, room_id, lambda m: any("from irc" in x["content"]["body"] for x in m)
        )
        mark = irc.mark()
        await send(owner, room_id, {"msgtype": "m.text", "body": "from matrix"})
        await irc.wait_for(
            lambda m: m.command == "PRIVMSG" and "from matrix" in m.trailing, since=mark
        )
        await wait_until(
            # the other side may see a message before its publisher has the echo
            lambda: all(s.relayed_out == s.relayed_in == 1 for s in srv.app.link_statuses()),
            5,
            "counted",
        )
        after = await scrape(url)
        assert after[("bridgehost_events_published_total", ())] == published + 2
        for labels in (irc_labels, mx_labels):
            assert after[key("bridgehost_link_relayed_in_total", labels)] == 1
            assert after[key("bridgehost_link_relayed_out_total", labels)] == 1
            assert after[key("bridgehost_link_latency_in_seconds_count", labels)] == 1
            assert after[key("bridgehost_link_latency_out_seconds_count", labels)] == 1
            assert after[key("bridgehost_link_latency_out_seconds_bucket", labels, le="+Inf")] == 1
            assert after[key("bridgehost_link_queued", labels)] == 0
            assert after[key("bridgehost_link_failing_seconds", labels)] == 0
        assert after[("bridgehost_connections", (("kind", "reserved"),))] >= 2
