"""/metrics: Prometheus text from live state, one registry per app."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridgehost.scalar.client import connect
from bridgehost.scalar.errors import ScalarError
from tests.web.helpers import get, web_app


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


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
        for c in (alice, bob, guest):
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
        assert ("process_resident_memory_bytes", ()) in after
        untouched = await scrape(other_url)
        assert untouched[("bridgehost_events_published_total", ())] == 0
        assert untouched[("bridgehost_connections", (("kind", "user"),))] == 0
