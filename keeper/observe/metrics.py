"""The keeper's Prometheus metrics: one collector reading Telemetry at scrape time, registered in
a registry of the keeper's own (never prometheus_client's global one)."""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from keeper.engine.record import Status
from keeper.observe.telemetry import LATENCY_BUCKETS, WEI, Telemetry, TxEvent

USD_8 = 10**8


class KeeperCollector(Collector):
    def __init__(self, t: Telemetry):
        self.t = t

    def collect(self) -> Iterator[Metric]:
        t = self.t
        yield CounterMetricFamily("keeper_blocks_processed", "Blocks the keeper completed a step for.",
                                  value=t.blocks_processed)
        yield CounterMetricFamily("keeper_step_failures", "Block steps that failed.", value=t.step_failures)
        yield GaugeMetricFamily("keeper_last_block", "The last block processed.", value=t.last_block)
        yield GaugeMetricFamily("keeper_head_block", "The highest block the node reported.", value=t.head)
        yield GaugeMetricFamily("keeper_head_lag_blocks", "Blocks between the node's head and the last "
                                "block processed.", value=t.lag())
        yield GaugeMetricFamily("keeper_seconds_since_block", "Seconds since the last block was processed.",
                                value=t.age())
        yield GaugeMetricFamily("keeper_healthy", "1 while blocks are processed on time (as /healthz).",
                                value=1 if t.healthy() else 0)
        tracked = GaugeMetricFamily("keeper_positions_tracked", "Accounts with debt mirrored.", labels=["protocol"])
        cands = GaugeMetricFamily("keeper_candidates", "Liquidation plans made in the last block.",
                                  labels=["protocol"])
        ready = GaugeMetricFamily("keeper_protocol_ready", "1 once the protocol was assessed (0: syncing).",
                                  labels=["protocol"])
        for name, p in sorted(t.protocols.items()):
            tracked.add_metric([name], p.tracked)
            cands.add_metric([name], p.candidates)
            ready.add_metric([name], 1 if p.ready else 0)
        yield from (tracked, cands, ready)
        liq = CounterMetricFamily("keeper_liquidations", "Outcomes recorded, by protocol and status.",
                                  labels=["protocol", "status"])
        names = sorted(set(t.protocols) | {p for p, _ in t.outcomes})
        for name in names:
            for s in Status:
                liq.add_metric([name, s.value], t.outcomes[(name, s.value)])
        yield liq
        tx = CounterMetricFamily("keeper_transactions", "Transactions by event.", labels=["event"])
        for e in TxEvent:
            tx.add_metric([e.value], t.tx[e])
        yield tx
        yield GaugeMetricFamily("keeper_transactions_in_flight", "Transactions sent whose receipt is not seen.",
                                value=len(t.in_flight))
        yield GaugeMetricFamily("keeper_realised_profit_usd", "Realised profit after gas since start-up, USD "
                                "(reverted transactions count their fees as a loss).",
                                value=t.realised_profit_8 / USD_8)
        yield CounterMetricFamily("keeper_gas_spent_usd", "Fees paid for liquidations since start-up, USD.",
                                  value=t.gas_spent_8 / USD_8)
        yield GaugeMetricFamily("keeper_wallet_eth", "The wallet's native balance, ETH.",
                                value=(t.wallet_eth or 0) / WEI)
        bal = GaugeMetricFamily("keeper_wallet_token_balance", "The wallet's token balances, in the token's "
                                "smallest unit.", labels=["token"])
        for token, amount in sorted(t.wallet_tokens.items()):
            bal.add_metric([token], float(amount))
        yield bal
        req = CounterMetricFamily("keeper_rpc_requests", "JSON-RPC requests, by endpoint and method.",
                                  labels=["endpoint", "method"])
        err = CounterMetricFamily("keeper_rpc_errors", "JSON-RPC requests that failed (no answer, an error "
                                  "answer or a malformed one), by endpoint and method.", labels=["endpoint", "method"])
        for (ep, m), n in sorted(t.rpc_requests.items()):
            req.add_metric([ep, m], n)
            err.add_metric([ep, m], t.rpc_errors[(ep, m)])
        yield from (req, err)
        rej = CounterMetricFamily("keeper_rpc_rejected", "Answers rejected as malformed or inconsistent (a head "
                                  "gone back, a block or receipt not the one asked...), by endpoint and kind.",
                                  labels=["endpoint", "kind"])
        for (ep, kind), n in sorted(t.rpc_rejects.items()):
            rej.add_metric([ep, kind], n)
        yield rej
        active = GaugeMetricFamily("keeper_rpc_endpoint_active", "1 for the endpoint requests go to.",
                                   labels=["endpoint"])
        for ep in sorted({ep for ep, _ in t.rpc_requests} | {t.rpc_active} - {""}):
            active.add_metric([ep], 1 if ep == t.rpc_active else 0)
        yield active
        acc = 0
        buckets: list[tuple[str, float]] = []
        for bound, n in zip([*(str(b) for b in LATENCY_BUCKETS), "+Inf"], t.latency_counts):
            acc += n
            buckets.append((bound, acc))
        yield HistogramMetricFamily("keeper_head_to_submit_seconds", "From first seeing a block to sending a "
                                    "transaction for it.", buckets=buckets, sum_value=t.latency_sum)


def registry_for(t: Telemetry) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(KeeperCollector(t))
    return reg


def exposition(reg: CollectorRegistry) -> bytes:
    return generate_latest(reg)
