"""LinkState: state changes, failing_since, errors and latency (fake clock)."""

from __future__ import annotations

import json
import logging

import pytest

from bridgehost.adapters.state import FAILING, HEALTHY, STATES, LinkState
from bridgehost.testing import FakeClock


def make(clock: FakeClock) -> LinkState:
    return LinkState("libera", "#python", "#python@example.com", "both", clock=clock)


def test_since_moves_only_when_the_state_changes() -> None:
    clock = FakeClock(wall_ms=1_000_000)
    st = make(clock)
    assert (st.state, st.since) == ("starting", 1000.0)
    clock.advance(5)
    st.set("joined")
    clock.advance(5)
    st.set("joined")
    assert st.since == 1005.0


def test_failing_since_spans_a_reconnect_until_healthy_again() -> None:
    clock = FakeClock(wall_ms=0)
    st = make(clock)
    st.set("connecting")
    assert st.failing_since is None and not st.failing
    clock.advance(1)
    st.set("disconnected", "cannot connect: refused")
    clock.advance(2)
    st.set("connecting")
    clock.advance(2)
    st.set("disconnected", "cannot connect: refused")
    assert st.failing_since == 1.0 and st.failing
    st.set("joined")
    assert st.failing_since is None
    assert (st.last_error, st.last_error_time) == ("cannot connect: refused", 5.0)


def test_an_error_without_a_state_change_keeps_the_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock(wall_ms=0)
    st = make(clock)
    st.set("joined")
    clock.advance(3)
    st.error("cannot send to #python: +m (404)")
    assert st.state == "joined" and st.failing_since is None
    assert (st.last_error, st.last_error_time) == ("cannot send to #python: +m (404)", 3.0)
    assert "(cannot send to #python: +m (404))" in caplog.text


def test_relay_counts_and_latencies() -> None:
    clock = FakeClock(wall_ms=10_000)
    st = make(clock)
    clock.advance(0.5)
    st.relayed(committed_ms=10_000)  # sent 0.5 s after the Scalar commit
    st.published(0.02)
    snap_out, snap_in = st.latency_out.snapshot(), st.latency_in.snapshot()
    assert (st.relayed_out, st.relayed_in) == (1, 1)
    assert (snap_out.count, snap_out.sum) == (1, 0.5)
    assert (snap_in.count, snap_in.sum) == (1, 0.02)


def test_as_dict_is_json_with_every_field_the_status_shows() -> None:
    st = make(FakeClock())
    st.set("auth failed", "SASL authentication failed (904)")
    out = json.loads(json.dumps(st.as_dict()))
    assert out["state"] == "auth failed" and out["failing_since"] == out["last_error_time"]
    assert set(out) >= {
        "account", "target", "channel", "direction", "state", "since", "last_error",
        "last_error_time", "failing_since", "queued", "dropped", "relayed_in", "relayed_out",
        "latency_in", "latency_out",
    }  # fmt: skip
    assert out["latency_out"]["count"] == 0


def test_every_state_is_healthy_failing_or_on_its_way() -> None:
    assert HEALTHY.isdisjoint(FAILING)
    assert set(STATES) >= HEALTHY | FAILING
