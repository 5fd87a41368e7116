"""Operator logs without a node: repeated identical warnings collapsed with a count, the heartbeat
every N blocks, consecutive step failures alerting once until a step succeeds, alerts that keep a
webhook's secret path out of the logs."""
from __future__ import annotations

import contextlib
import io
import json
import sys

import structlog

from keeper.log import CollapseRepeats, setup_logging
from keeper.observe.alerts import Alerter
from keeper.observe.config import MonitorConfig
from keeper.observe.telemetry import Telemetry


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_repeated_identical_warnings_are_collapsed_with_a_count():
    clock = Clock()
    collapse = CollapseRepeats(window=60, clock=clock)
    kept = []
    for i in range(160):
        clock.now = i * 0.15  # 160 in 24 s, as a wallet running dry did
        with contextlib.suppress(structlog.DropEvent):
            kept.append(dict(collapse(None, "warning", {"event": "budget.low", "level": "warning", "token": "USDC"})))
    with contextlib.suppress(structlog.DropEvent):
        kept.append(dict(collapse(None, "warning", {"event": "budget.low", "level": "warning", "token": "WETH"})))
    clock.now = 61
    kept.append(dict(collapse(None, "warning", {"event": "budget.low", "level": "warning", "token": "USDC"})))
    # Info lines are never collapsed.
    for _ in range(3):
        kept.append(dict(collapse(None, "info", {"event": "rank", "level": "info"})))
    assert [(e.get("token"), e.get("repeated")) for e in kept[:3]] == [("USDC", None), ("WETH", None), ("USDC", 159)]
    assert len(kept) == 6


def test_setup_logging_collapses_and_debug_prints_more(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    setup_logging(json_lines=True, level="info")
    log = structlog.get_logger()
    for _ in range(5):
        log.warning("wallet.short", token="USDC")
    log.debug("step.done", block=1)
    lines = [json.loads(x) for x in err.getvalue().splitlines()]
    assert [x["event"] for x in lines] == ["wallet.short"]
    setup_logging(json_lines=True, level="debug")
    structlog.get_logger().debug("step.done", block=2)
    assert json.loads(err.getvalue().splitlines()[-1])["event"] == "step.done"
    setup_logging()


def test_heartbeat_every_n_blocks_and_one_step_failure_alert_until_a_success():
    cfg = MonitorConfig(heartbeat_blocks=3, step_failures_alert=2, min_wallet_eth=0)
    clock = Clock()
    t = Telemetry(cfg, Alerter(), clock=clock)
    t.assessed("aave_v3", tracked=7, candidates=1)
    t.wallet(2 * 10**18, {})
    with structlog.testing.capture_logs() as logs:
        for b in range(1, 8):
            t.head_seen(b)
            t.block_processed(b)
        for _ in range(5):
            t.step_failed(RuntimeError("node said no"))
        t.block_processed(8)
        for _ in range(2):
            t.step_failed(RuntimeError("again"))
    beats = [e for e in logs if e["event"] == "heartbeat"]
    assert [e["block"] for e in beats] == [3, 6]
    assert beats[0]["positions"] == {"aave_v3": 7} and beats[0]["wallet_eth"] == "2" and beats[0]["head_lag"] == 0
    alerts = [e for e in logs if e["event"] == "alert" and e.get("condition") == "step_failures"]
    assert [("cleared" in e) for e in alerts] == [False, True, False]  # raised, cleared by block 8, raised again


def test_the_webhook_url_is_never_logged():
    a = Alerter("https://hooks.example.com/services/T000/B000/SECRET")
    with structlog.testing.capture_logs() as logs:
        a.event("liquidation confirmed")  # no running loop: the log line is the alert
    assert logs and "SECRET" not in repr(logs)


def test_health_before_the_first_block_is_syncing_without_a_stale_alert():
    clock = Clock()
    t = Telemetry(MonitorConfig(stale_after_seconds=5), Alerter(), clock=clock)
    clock.now = 100  # a long first discovery
    with structlog.testing.capture_logs() as logs:
        t.check()
    ok, body = t.health()
    assert not ok and body["status"] == "syncing" and not logs
    t.block_processed(1)
    assert t.health()[0]
    clock.now = 106
    with structlog.testing.capture_logs() as logs:
        t.check()
        t.check()
    assert t.health()[1]["status"] == "stale"
    assert [e["condition"] for e in logs if e["event"] == "alert"] == ["head_stale"]
