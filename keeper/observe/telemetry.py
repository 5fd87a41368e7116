"""What the engine reports while it runs, kept as plain numbers: the metrics server and /healthz
read them, the heartbeat logs them, alerts fire from them. The engine only calls these methods (it
never imports prometheus); keeper.observe.metrics turns the numbers into Prometheus families."""
from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

import structlog

from keeper.engine.record import Outcome, Status, usd
from keeper.observe.alerts import Alerter, Condition
from keeper.observe.config import MonitorConfig

log = structlog.get_logger()

WEI = 10**18
# Seconds from first seeing a head to sending a transaction for it (a step reads, ranks, simulates).
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)


class TxEvent(StrEnum):
    SENT = "sent"
    CONFIRMED = "confirmed"  # mined with status 1
    REVERTED = "reverted"  # mined with status 0
    REPLACED = "replaced"  # a fee bump sent under the same nonce (the transaction manager reports it)
    CANCELLED = "cancelled"  # a zero-value self-transfer took the nonce (the transaction manager reports it)
    DROPPED = "dropped"  # refused by the node, or its nonce used by another transaction (the manager reports it)


@dataclass
class ProtocolState:
    tracked: int = 0  # accounts with debt mirrored
    candidates: int = 0  # plans made this block
    ready: bool = False  # assessed at least once (discovery caught up with the head)


class Telemetry:
    def __init__(self, cfg: MonitorConfig | None = None, alerter: Alerter | None = None, *,
                 clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg or MonitorConfig()
        self.alerter = alerter or Alerter()
        self.clock = clock
        self.started_at = clock()
        self.head = -1  # the highest block number the node reported
        self.head_changed_at = self.started_at
        self.last_block = -1  # the last block a step completed for
        self.processed_at: float | None = None
        self.blocks_processed = 0
        self.step_failures = 0  # total
        self.failing = 0  # consecutive
        self.protocols: dict[str, ProtocolState] = {}
        self.wallet_eth: int | None = None  # wei
        self.wallet_tokens: dict[str, int] = {}
        self.native_price_8 = 0
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (protocol, status)
        self.tx: Counter[TxEvent] = Counter()
        self.realised_profit_8 = 0  # USD, 8 decimals, confirmed and reverted liquidations
        self.gas_spent_8 = 0  # USD, 8 decimals
        self.rpc_requests: Counter[tuple[str, str]] = Counter()  # (endpoint, method)
        self.rpc_errors: Counter[tuple[str, str]] = Counter()
        self.rpc_active = ""  # the endpoint requests go to now
        self.rpc_rejects: Counter[tuple[str, str]] = Counter()  # (endpoint, kind): answers rejected
        self.in_flight: set[str] = set()  # transaction hashes sent, no receipt seen
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self._head_seen: dict[int, float] = {}
        self._step_block: int | None = None

    # -- the run loop --
    def head_seen(self, head: int) -> None:
        now = self.clock()
        if head > self.head:
            self.head, self.head_changed_at = head, now
            self._head_seen[head] = now
            for b in [b for b in self._head_seen if b < head - 64]:
                del self._head_seen[b]
        self.check()

    def step_started(self, block: int) -> None:
        self._step_block = block
        self._head_seen.setdefault(block, self.clock())

    def assessed(self, protocol: str, tracked: int, candidates: int) -> None:
        self.protocols[protocol] = ProtocolState(tracked, candidates, True)

    def block_processed(self, block: int) -> None:
        self.last_block, self.processed_at = block, self.clock()
        self.head = max(self.head, block)
        self.blocks_processed += 1
        self._step_block = None
        if self.failing:
            self.failing = 0
            self.alerter.clear(Condition.STEP_FAILURES, "block steps succeed again")
        self.alerter.clear(Condition.HEAD_STALE, f"blocks processed again (block {block})")
        if self.blocks_processed % self.cfg.heartbeat_blocks == 0:
            log.info("heartbeat", **self.summary())

    def step_failed(self, error: BaseException) -> None:
        self.step_failures += 1
        self.failing += 1
        self._step_block = None
        if self.failing >= self.cfg.step_failures_alert:
            self.alerter.raise_(Condition.STEP_FAILURES,
                                f"{self.failing} block steps failed in a row, last: {type(error).__name__}: "
                                f"{str(error)[:200]}")

    def check(self) -> None:
        """Time-based conditions (the monitor calls it every second too). Not before the first block:
        the first step reads each protocol's history (minutes on a long chain); /healthz says
        "syncing" meanwhile."""
        if self.processed_at is None:
            return
        age = self.age()
        if age > self.cfg.stale_after_seconds:
            self.alerter.raise_(Condition.HEAD_STALE,
                                f"no block processed for {age:.0f}s (last {self.last_block}, head {self.head})")

    # -- balances and prices --
    def wallet(self, eth_wei: int, tokens: dict[str, int]) -> None:
        self.wallet_eth, self.wallet_tokens = eth_wei, dict(tokens)
        minimum = int(self.cfg.min_wallet_eth * WEI)
        if eth_wei < minimum:
            self.alerter.raise_(Condition.WALLET_LOW,
                                f"wallet holds {_eth(eth_wei)} ETH, below the minimum {self.cfg.min_wallet_eth}")
        else:
            self.alerter.clear(Condition.WALLET_LOW, f"wallet back to {_eth(eth_wei)} ETH")

    def native_price(self, price_8: int) -> None:
        self.native_price_8 = price_8

    # -- outcomes (the recorder calls it for every outcome recorded) --
    def outcome(self, o: Outcome) -> None:
        if o.status is Status.PENDING:  # sent: counted once the chain decides (the in-flight gauge meanwhile)
            return
        self.outcomes[(o.protocol, o.status.value)] += 1
        if o.status in (Status.CONFIRMED, Status.REVERTED) and o.realised_profit is not None:
            self.realised_profit_8 += o.realised_profit
        fee = o.details.get("fee_paid_wei", o.details.get("gas_paid_wei"))
        if isinstance(fee, int) and self.native_price_8:
            self.gas_spent_8 += fee * self.native_price_8 // WEI
        if o.status is Status.CONFIRMED:
            self.alerter.event(f"liquidation confirmed: {o.protocol} {o.account} {o.label}, realised "
                               f"{usd(o.realised_profit)} USD, tx {o.tx_hash}")

    # -- transactions and RPC (the counting transport calls these) --
    def rpc_call(self, endpoint: str, method: str, ok: bool) -> None:
        self.rpc_requests[(endpoint, method)] += 1
        if not ok:
            self.rpc_errors[(endpoint, method)] += 1

    def rpc_rejected(self, endpoint: str, kind: str) -> None:
        self.rpc_rejects[(endpoint, kind)] += 1

    def rpc_switched(self, endpoint: str, why: str) -> None:
        self.rpc_active = endpoint

    def tx_sent(self, tx_hash: str) -> None:
        if tx_hash.lower() in self.in_flight:  # handed on again (a relay's public fallback)
            return
        self.tx[TxEvent.SENT] += 1
        self.in_flight.add(tx_hash.lower())
        seen = self._head_seen.get(self._step_block) if self._step_block is not None else None
        if seen is not None:
            dt = max(0.0, self.clock() - seen)
            self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, dt)] += 1
            self.latency_sum += dt

    def tx_mined(self, tx_hash: str, status: int) -> None:
        h = tx_hash.lower()
        if h in self.in_flight:
            self.in_flight.discard(h)
            self.tx[TxEvent.CONFIRMED if status == 1 else TxEvent.REVERTED] += 1

    def tx_event(self, event: TxEvent, tx_hash: str | None = None) -> None:
        """For the transaction manager: ``tx_hash`` was replaced, cancelled or dropped (it will not be
        mined: no longer in flight)."""
        self.tx[event] += 1
        if tx_hash is not None:
            self.in_flight.discard(tx_hash.lower())

    # -- reading --
    def age(self) -> float:
        """Seconds since the last block was processed (since start-up before the first)."""
        return self.clock() - (self.processed_at if self.processed_at is not None else self.started_at)

    def healthy(self) -> bool:
        return self.age() <= self.cfg.stale_after_seconds

    def lag(self) -> int:
        return max(0, self.head - self.last_block) if self.last_block >= 0 else 0

    def summary(self) -> dict[str, Any]:
        return {"block": self.last_block, "head_lag": self.lag(),
                "positions": {n: p.tracked for n, p in self.protocols.items()},
                "candidates": {n: p.candidates for n, p in self.protocols.items()},
                "wallet_eth": _eth(self.wallet_eth) if self.wallet_eth is not None else None,
                "in_flight": len(self.in_flight)}

    def health(self) -> tuple[bool, dict[str, Any]]:
        ok = self.healthy()
        status = "ok" if ok else ("syncing" if self.processed_at is None else "stale")
        body = {"status": status, "last_block": self.last_block, "head": self.head,
                "head_lag": self.lag(), "seconds_since_block": round(self.age(), 3),
                "wallet_eth": _eth(self.wallet_eth) if self.wallet_eth is not None else None,
                "in_flight": len(self.in_flight), "rpc_endpoint": self.rpc_active,
                "protocols": {n: "ready" if p.ready else "syncing" for n, p in self.protocols.items()}}
        return ok, body


def _eth(wei: int) -> str:
    return str(Decimal(wei) / WEI)
