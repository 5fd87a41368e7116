"""Settle: the record of a plan that was sent, rebuilt from its journal attempt (what was decided,
with the figures the executor kept in it) and its transactions' receipts, so that it comes out the
same after a restart as without one.

Realised profit of a confirmed plan: the wallet's token changes in its own transactions' logs at
the prices the plan was valued at, plus deferred credits (accrual), minus what a claim collects
that was booked before, minus the gas and native value paid at the native price of its block. A
reverted, cancelled or dropped plan realised minus the gas its mined transactions paid (approvals
aside: the wallet's set-up, as for a confirmed plan)."""
from __future__ import annotations

from typing import Any

from keeper.chain.client import ERC20_TRANSFER_TOPIC, Log
from keeper.chain.sender import Receipt
from keeper.engine.record import Outcome, Status
from keeper.protocols.plan import PlanKind, SkipCode, TokenPrice, value_usd
from keeper.send.manager import Settled
from keeper.store import OutcomeStatus, TxKind, TxRecord, TxStatus

APPROVALS_ONLY = "approvals"  # plan_kind of an attempt that only approves (a node without eth_simulateV1)


def token_deltas(logs: list[Log], wallet: str, tokens: set[str]) -> dict[str, int]:
    """Net ERC20 transfers to/from ``wallet`` in ``logs``, per token."""
    w = wallet.lower()[2:]
    out: dict[str, int] = {}
    for lg in logs:
        if lg.address not in tokens or len(lg.topics) != 3 or lg.topics[0] != ERC20_TRANSFER_TOPIC:
            continue
        amount = int.from_bytes(lg.data[:32], "big")
        if lg.topics[2].endswith(w):
            out[lg.address] = out.get(lg.address, 0) + amount
        if lg.topics[1].endswith(w):
            out[lg.address] = out.get(lg.address, 0) - amount
    return out


def journal_details(record: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """What an attempt keeps for its record: ``record`` (the Outcome's own fields) and ``plan`` (the
    figures realised profit needs)."""
    return {"record": record, "plan": plan}


def plan_figures(prices: dict[str, TokenPrice], collects: dict[str, int], deferred: dict[str, int],
                 native_spent: int, whats: list[str], native_price: int) -> dict[str, Any]:
    return {"prices": {t: [p.price, p.decimals, p.symbol] for t, p in prices.items()},
            "collects": dict(collects), "deferred": dict(deferred), "native_spent": native_spent,
            "whats": whats, "native_price_8": native_price}


def _plan_txs(txs: tuple[TxRecord, ...]) -> list[list[TxRecord]]:
    """The plan's own transactions grouped by nonce, in nonce order (a replacement shares its nonce;
    a cancel belongs to the nonce it took)."""
    nonces = sorted({t.nonce for t in txs if t.kind == TxKind.LIQUIDATION})
    return [[t for t in txs if t.nonce == n] for n in nonces]


def settled_outcome(s: Settled, wallet: str) -> Outcome | None:
    """The final record of a sent attempt (None for an approvals-only attempt: not a plan's record)."""
    a = s.outcome.attempt
    if a.plan_kind == APPROVALS_ONLY:
        return None
    rec: dict[str, Any] = dict(a.details.get("record") or {})  # type: ignore[arg-type]
    fig: dict[str, Any] = dict(a.details.get("plan") or {})  # type: ignore[arg-type]
    details: dict[str, Any] = dict(rec.get("details") or {})
    native_price = int(fig.get("native_price_8", 0))
    whats: list[str] = list(fig.get("whats") or [])
    kind = rec.get("kind")

    def outcome(status: Status, reason: str | None, **kw: Any) -> Outcome:
        kw.setdefault("details", details)
        return Outcome(status, a.protocol, str(rec.get("account", a.accounts[0])), str(rec.get("label", "-")), reason,
                       kind=PlanKind(kind) if kind else None, accounts=tuple(rec.get("accounts", a.accounts)),
                       rank=rec.get("rank"), ranked_net=rec.get("ranked_net"),
                       predicted_profit=rec.get("predicted_profit"), attempt=a.id, **kw)

    groups = _plan_txs(s.outcome.txs)
    mined = [t for t in s.outcome.txs if t.status in (TxStatus.CONFIRMED, TxStatus.REVERTED)]
    mined = [t for t in mined if t.tx_hash in s.receipts]
    receipts: list[Receipt] = [s.receipts[t.tx_hash] for t in mined]
    plan_receipts = [s.receipts[t.tx_hash] for g in groups for t in g
                     if t.kind == TxKind.LIQUIDATION and t.tx_hash in s.receipts]
    # Approvals are the wallet's set-up, not the plan's cost (as for a confirmed plan): the plan's own
    # transactions and a cancel that took one's nonce.
    paid_all = sum(r.fee_paid for t, r in zip(mined, receipts) if t.kind != TxKind.APPROVAL)
    hashes = [r.tx_hash for r in plan_receipts]
    st = s.outcome.status

    def what(i: int) -> str:
        return whats[i] if i < len(whats) else f"transaction {i + 1}"

    if st == OutcomeStatus.CONFIRMED:
        prices = {t: TokenPrice(int(p), int(d), str(sym)) for t, (p, d, sym) in (fig.get("prices") or {}).items()}
        collects = {t: int(x) for t, x in (fig.get("collects") or {}).items()}
        deferred = {t: int(x) for t, x in (fig.get("deferred") or {}).items()}
        logs = [lg for r in plan_receipts for lg in r.logs]
        deltas = token_deltas(logs, wallet, set(prices))
        fee_paid = sum(r.fee_paid for r in plan_receipts) + int(fig.get("native_spent", 0))
        # Accrual: deferred credits are booked now; a claim counts only what differs from what it collects.
        booked = {t: deltas.get(t, 0) - collects.get(t, 0) for t in set(deltas) | set(collects)}
        realised = value_usd(booked, prices) + value_usd(deferred, prices) - fee_paid * native_price // 10**18
        last = plan_receipts[-1]
        return outcome(Status.CONFIRMED, None, tx_hash=last.tx_hash, block=last.block_number,
                       realised_profit=realised, gas_used=sum(r.gas_used for r in plan_receipts),
                       details={**details, "tx_hashes": hashes,
                                "fee_paid_wei": sum(r.fee_paid for r in plan_receipts),
                                "token_deltas": {t: str(d) for t, d in deltas.items()},
                                "blocks": sorted({r.block_number for r in plan_receipts})})
    loss = -(paid_all * native_price // 10**18)
    if st == OutcomeStatus.REVERTED:
        i, rc = next((i, s.receipts[t.tx_hash]) for i, g in enumerate(groups) for t in g
                     if t.status == TxStatus.REVERTED and t.tx_hash in s.receipts)
        return outcome(Status.REVERTED, f"{what(i)} reverted on chain", tx_hash=rc.tx_hash, block=rc.block_number,
                       gas_used=sum(r.gas_used for r in plan_receipts), realised_profit=loss,
                       details={**details, "tx_hashes": hashes, "gas_paid_wei": paid_all})
    if st == OutcomeStatus.CANCELLED:
        cancel = next(t for t in s.outcome.txs if t.kind == TxKind.CANCEL and t.status in (TxStatus.CONFIRMED,
                                                                                           TxStatus.REVERTED))
        return outcome(Status.CANCELLED, f"the opportunity was gone before it was mined: nonce {cancel.nonce} "
                                         "taken by a self-transfer", tx_hash=cancel.tx_hash, block=cancel.block,
                       gas_used=sum(r.gas_used for t, r in zip(mined, receipts) if t.kind != TxKind.APPROVAL),
                       realised_profit=loss, details={**details, "gas_paid_wei": paid_all})
    # Dropped: nothing of the plan was mined. Refused by the node when it was sent: failed.
    refused = [(i, s.notes[t.tx_hash]) for i, g in enumerate(groups) for t in g
               if s.notes.get(t.tx_hash, "").startswith(("refused by the node", "relay given up"))]
    if refused and not any(t.status == TxStatus.PENDING for t in s.outcome.txs):
        i, note = refused[0]
        went_out = bool(mined) or i > 0
        reason = (f"sending {what(i)} failed" + (" after earlier transactions went out" if went_out else "")
                  + ": " + note.removeprefix("refused by the node: "))
        return outcome(Status.FAILED, reason, realised_profit=loss if paid_all else None,
                       details={**details, "tx_hashes": [t.tx_hash for t in mined]})
    return outcome(Status.DROPPED, "sent, never mined, and its nonce was taken by another transaction",
                   realised_profit=loss if paid_all else None, details=details)


# Skip codes that make an account wait (keeper.failure_backoff_blocks) before it is planned again.
BACKOFF_CODES = frozenset({SkipCode.SIMULATION_REVERT})
BACKOFF_STATUSES = frozenset({Status.FAILED, Status.REVERTED, Status.DROPPED})
