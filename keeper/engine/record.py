"""Outcome records: every liquidation sent, confirmed, reverted, cancelled, dropped, simulated
(dry-run) or skipped, with why and with predicted and realised profit. Logged, kept for reports,
optionally appended to a JSON-lines file.

A plan that was sent is recorded as pending with the id of its journal attempt, then again when the
chain decided (confirmed, reverted, cancelled, dropped): the report keeps the latest record of each
attempt, the file has both lines (readers take the last line of an attempt). The file is checked
writable at start-up; a line that cannot be written is kept and written with the next one."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, overload

import structlog

from keeper.protocols.plan import USD, AccountView, PlanKind, Skip, SkipCode, jsonable

log = structlog.get_logger()


@overload
def usd(x: int) -> float: ...
@overload
def usd(x: None) -> None: ...
def usd(x: int | None) -> float | None:
    """8-decimal integer USD -> a number for reports (display only; maths stays in integers)."""
    return None if x is None else float(Decimal(x) / USD)


class Status(StrEnum):
    PENDING = "pending"  # sent, the chain has not decided yet
    CONFIRMED = "confirmed"
    REVERTED = "reverted"
    CANCELLED = "cancelled"  # the opportunity was gone: a self-transfer took its nonce
    DROPPED = "dropped"  # sent, never mined, nothing took its place
    DRY_RUN = "dry-run"
    SKIPPED = "skipped"
    FAILED = "failed"  # the node refused to take it


@dataclass
class Outcome:
    status: Status
    protocol: str
    account: str  # the plan's lead account (the keeper for a claim, the market for a buy)
    label: str = "-"
    reason: str | None = None  # for people; a skip's message
    reason_code: SkipCode | None = None  # a skip's code (records are deduplicated on it)
    kind: PlanKind | None = None  # of the plan (None: an account skipped before any plan)
    accounts: tuple[str, ...] = ()  # every account the plan liquidates (all of a batch)
    rank: int | None = None  # the plan's place in its block's ranking (0: most profitable)
    ranked_net: int | None = None  # the profit after estimated gas it was ranked by (USD 8 dec)
    tx_hash: str | None = None
    block: int | None = None
    predicted_profit: int | None = None  # USD 8 dec, after gas
    realised_profit: int | None = None  # USD 8 dec, after gas
    gas_used: int | None = None
    details: dict[str, Any] = field(default_factory=dict)  # the plan's report details and the engine's figures
    attempt: int | None = None  # the journal attempt of a plan that was sent

    @classmethod
    def skipped_account(cls, v: AccountView, skip: Skip) -> Outcome:
        return cls(Status.SKIPPED, v.protocol, v.account, v.label, skip.message, skip.code, accounts=(v.account,))

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "protocol": self.protocol, "account": self.account, "label": self.label,
                "reason": self.reason, "reason_code": self.reason_code.value if self.reason_code else None,
                "kind": self.kind.value if self.kind else None, "accounts": list(self.accounts),
                "rank": self.rank, "ranked_net_usd": usd(self.ranked_net),
                "tx_hash": self.tx_hash, "block": self.block, "predicted_profit_usd": usd(self.predicted_profit),
                "realised_profit_usd": usd(self.realised_profit), "gas_used": self.gas_used,
                "attempt": self.attempt, "details": jsonable(self.details)}


class Recorder:
    def __init__(self, path: Path | None = None):
        self.outcomes: list[Outcome] = []
        self.path = path
        self._last_skip: dict[tuple[str, str], tuple[SkipCode | None, str]] = {}
        # protocol -> token -> amount credited by the protocol and not claimed yet (set by the daemon)
        self.pending_rewards: dict[str, dict[str, int]] = {}
        self.listeners: list[Callable[[Outcome], None]] = []  # told of every outcome recorded (telemetry)
        self._by_attempt: dict[int, int] = {}  # attempt id -> index in outcomes
        self._unwritten: list[str] = []  # lines the file refused, written with the next one
        self._write_failed = False

    def check_writable(self) -> None:
        """Open the record file for appending (creating it), or raise OSError naming why not."""
        if self.path is not None:
            with self.path.open("a"):
                pass

    def recorded_attempts(self) -> dict[int, str]:
        """Attempt id -> the status of its last line in the record file (what an earlier run wrote)."""
        out: dict[int, str] = {}
        if self.path is None or not self.path.exists():
            return out
        with self.path.open() as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash
                if isinstance(rec, dict) and isinstance(rec.get("attempt"), int):
                    out[rec["attempt"]] = str(rec.get("status"))
        return out

    def add(self, o: Outcome) -> Outcome:
        key = (o.protocol, o.account)
        if o.status is Status.SKIPPED:
            # The same account skipped for the same reason (code) and pair every block is recorded once.
            if self._last_skip.get(key) == (o.reason_code, o.label):
                return o
            self._last_skip[key] = (o.reason_code, o.label)
        else:
            self._last_skip.pop(key, None)
        if o.attempt is not None and o.attempt in self._by_attempt:
            self.outcomes[self._by_attempt[o.attempt]] = o  # the chain's answer replaces "pending"
        else:
            if o.attempt is not None:
                self._by_attempt[o.attempt] = len(self.outcomes)
            self.outcomes.append(o)
        for listener in self.listeners:
            listener(o)
        fields = {k: v for k, v in o.to_json().items() if v is not None and v != [] and k != "details"}
        level = log.warning if o.status in (Status.REVERTED, Status.FAILED, Status.DROPPED) else log.info
        level(f"liquidation.{o.status.value}", **fields)
        if self.path:
            self._write(json.dumps(o.to_json()) + "\n")
        return o

    def _write(self, line: str) -> None:
        self._unwritten.append(line)
        try:
            with self.path.open("a") as f:  # type: ignore[union-attr]  # only called with a path
                f.write("".join(self._unwritten))
        except OSError as e:
            if not self._write_failed:
                log.error("record.write_failed", file=str(self.path), error=str(e), kept=len(self._unwritten))
            self._write_failed = True
            return
        if self._write_failed:
            log.info("record.write_resumed", file=str(self.path), lines=len(self._unwritten))
        self._write_failed = False
        self._unwritten = []

    def report(self) -> dict[str, Any]:
        def by(s: Status, claims: bool | None = None) -> list[dict[str, Any]]:
            return [o.to_json() for o in self.outcomes
                    if o.status is s and (claims is None or (o.kind is PlanKind.CLAIM) == claims)]

        return {"liquidations": by(Status.CONFIRMED, claims=False),
                "claims": by(Status.CONFIRMED, claims=True),  # rewards collected that earlier plans booked as deferred
                "pending": by(Status.PENDING), "cancelled": by(Status.CANCELLED), "dropped": by(Status.DROPPED),
                "reverted": by(Status.REVERTED), "dry_run": by(Status.DRY_RUN),
                "skipped": by(Status.SKIPPED), "failed": by(Status.FAILED),
                "pending_rewards": {p: {t: str(a) for t, a in r.items()} for p, r in self.pending_rewards.items()}}
