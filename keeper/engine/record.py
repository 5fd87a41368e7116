"""Outcome records: every liquidation sent, confirmed, reverted, simulated (dry-run) or skipped,
with why and with predicted and realised profit. Logged, kept for reports, optionally appended to
a JSON-lines file."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

import structlog

from keeper.protocols.base import USD

log = structlog.get_logger()


def usd(x: int | None) -> float | None:
    """8-decimal integer USD -> a number for reports (display only; maths stays in integers)."""
    return None if x is None else float(Decimal(x) / USD)


@dataclass
class Outcome:
    status: str  # confirmed | reverted | dry-run | skipped | failed
    protocol: str
    account: str
    label: str = "-"
    reason: str | None = None
    tx_hash: str | None = None
    block: int | None = None
    predicted_profit: int | None = None  # USD 8 dec, after gas
    realised_profit: int | None = None  # USD 8 dec, after gas
    gas_used: int | None = None
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d["predicted_profit_usd"] = usd(d.pop("predicted_profit"))
        d["realised_profit_usd"] = usd(d.pop("realised_profit"))
        d["details"] = {k: (str(v) if isinstance(v, int) and abs(v) >= 2**53 else v)
                        for k, v in self.details.items()}
        return d


class Recorder:
    def __init__(self, path: Path | None = None):
        self.outcomes: list[Outcome] = []
        self.path = path
        self._last_skip: dict[tuple[str, str], str] = {}
        # protocol -> token -> amount credited by the protocol and not claimed yet (set by the daemon)
        self.pending_rewards: dict[str, dict[str, int]] = {}

    def add(self, o: Outcome) -> Outcome:
        key = (o.protocol, o.account)
        if o.status == "skipped":
            # The same account skipped for the same kind of reason every block is recorded once.
            kind = (o.reason or "").split(" ")[0] + o.label
            if self._last_skip.get(key) == kind:
                return o
            self._last_skip[key] = kind
        else:
            self._last_skip.pop(key, None)
        self.outcomes.append(o)
        fields = {k: v for k, v in o.to_json().items() if v is not None and k != "details"}
        level = log.warning if o.status in ("reverted", "failed") else log.info
        level(f"liquidation.{o.status}", **fields)
        if self.path:
            with self.path.open("a") as f:
                f.write(json.dumps(o.to_json()) + "\n")
        return o

    def report(self) -> dict:
        by = lambda s: [o.to_json() for o in self.outcomes if o.status == s]  # noqa: E731
        confirmed = by("confirmed")
        is_claim = lambda o: o.get("details", {}).get("kind") == "claim"  # noqa: E731
        return {"liquidations": [o for o in confirmed if not is_claim(o)],
                "claims": [o for o in confirmed if is_claim(o)],  # rewards collected (e.g. Perennial claimFee)
                "reverted": by("reverted"), "dry_run": by("dry-run"),
                "skipped": by("skipped"), "failed": by("failed"),
                "pending_rewards": {p: {t: str(a) for t, a in r.items()} for p, r in self.pending_rewards.items()}}
