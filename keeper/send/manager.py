"""The transaction manager: nonces, fees and every transaction's life, journal first, on its own task.

- ``submit`` (called by the block loop) journals the plan (an attempt) and each transaction
  (nonce, hash, fees, the signed bytes) as pending BEFORE it is broadcast, then returns: the block
  loop never waits for a receipt.
- Once per block (``tick``, from the manager's own task) the receipts of every transaction in flight
  come in one JSON-RPC batch with the signer's nonce and balance. A mined transaction settles its
  nonce (the others signed at that nonce are dropped); an attempt with nothing left in flight is
  handed to ``on_settled`` with its outcome rebuilt from the journal. A poll that fails (a garbage
  answer, a timeout) changes nothing and is made again: nothing is decided from it.
- A liquidation still pending a block after it was sent is simulated again; if it would now revert
  (someone else liquidated, the price came back) it is cancelled by a 21,000-gas self-transfer at its
  nonce. One not mined after ``replace_after`` blocks is replaced at its nonce with bumped fees
  (keeper.send.policy: budget and cap).
- ``reconcile`` (at start-up, and whenever the node's nonce for the signer moves back: a rollback,
  or our transactions missing from the node's pending count: a lost mempool, a base-fee eviction)
  checks every unfinished journal entry against the chain: mined; still known to the node; or gone,
  and then sent again as the same signed bytes if it would still succeed, replaced when the node
  refuses its fees, cancelled when it would revert.
- With a relay (keeper.chain.relay) liquidations and approvals go to it instead of the public
  mempool; one the relay gave up on (``fallback = "give_up"``) is dropped and its nonce reused: past
  its target blocks it cannot be included. Cancellations always go to the public mempool.
- ``in_flight()`` names the accounts of attempts with something pending: the engine plans nothing
  for them, so a restart (kill -9 included) never sends a second liquidation for the same
  opportunity.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from eth_account.typed_transactions import TypedTransaction
from eth_utils import to_checksum_address
from hexbytes import HexBytes

from keeper.chain.client import AtHash, Chain, Log, hexint
from keeper.chain.fees import Fees, current_fees
from keeper.chain.l1fee import receipt_l1_fee
from keeper.chain.relay import Submitter
from keeper.chain.sender import Receipt, TxRequest
from keeper.chain.signer import Signer
from keeper.errors import RpcError, TransientRpcError
from keeper.observe.telemetry import TxEvent
from keeper.send.policy import FeePolicy
from keeper.store import (
    AttemptOutcome,
    Decision,
    JournalError,
    NewAttempt,
    NewTx,
    Store,
    TxKind,
    TxRecord,
    TxStatus,
)

log = structlog.get_logger()
CANCEL_GAS = 21_000
MINED = (TxStatus.CONFIRMED, TxStatus.REVERTED)
# What a node answers when a nonce is already used, or a transaction's fees are too low to enter
# its pool (geth, Nethermind, Erigon, Anvil wordings).
_NONCE_USED = ("nonce too low", "already been used", "nonce is too low", "old nonce")
_UNDERPRICED = ("underpriced", "fee too low", "less than block base fee", "max fee per gas less than",
                "feecap too low", "gas price too low")
_KNOWN = ("already known", "known transaction", "already imported", "alreadyknown")

# Why a liquidation would revert on the state of a block (None: it would still succeed). ``before``:
# our transactions at lower nonces still pending, which run first. The block is the one whose poll
# found it not mined: on a later state it may be mined already, and then it "would revert".
Check = Callable[[Sequence[TxRequest], TxRequest, int], Awaitable[str | None]]


class TxEvents(Protocol):
    """Told of what the transport does not show (telemetry): a hash replaced, cancelled or dropped."""
    def tx_event(self, event: TxEvent, tx_hash: str | None = None) -> None: ...


@dataclass(frozen=True)
class Submission:
    """A plan the block loop decided to send: its transactions in order (approvals first), each with
    its gas limit set."""
    protocol: str
    accounts: tuple[str, ...]  # what the attempt covers (at least the plan's lead account)
    plan_kind: str
    block: int
    txs: tuple[tuple[TxKind, TxRequest], ...]
    gross_wei: int  # the plan's expected profit before gas, in wei: its fee budget and tip share
    gas: int  # the plan's simulated gas
    details: dict[str, Any] = field(default_factory=dict)  # kept in the journal for the record


@dataclass(frozen=True)
class Submitted:
    attempt_id: int | None
    hashes: tuple[str, ...]  # broadcast (or at least journaled and possibly received), in order
    error: str | None = None  # why the rest (or everything) was not sent


@dataclass
class Settled:
    """An attempt with nothing in flight any more: its outcome from the journal and the receipts of
    its mined transactions."""
    outcome: AttemptOutcome
    receipts: dict[str, Receipt]
    notes: dict[str, str]  # hash -> why it was dropped (a node's refusal), when known


@dataclass
class _Slot:
    """One nonce in flight: the newest transaction signed at it, and every hash signed at it."""
    nonce: int
    attempt_id: int
    kind: TxKind
    request: TxRequest
    current: TxRecord
    hashes: list[str]
    sent_block: int
    ceiling: int | None  # the plan's fee budget per gas (None: the cap alone)
    lowest_since: int | None = None  # block since which no nonce of ours below it is pending
    consumed: int = 0  # polls that found the nonce used and none of our hashes mined
    checked: int = -1  # block of the last re-simulation
    stuck_logged: bool = False


def _request(raw: str, what: str) -> TxRequest:
    """What a signed transaction does (to, data, value, gas), from its bytes."""
    d = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    return TxRequest(to_checksum_address(d["to"]), bytes(d["data"]), int(d["value"]), gas=int(d["gas"]), what=what)


def _receipt(h: str, r: dict[str, Any]) -> Receipt:
    return Receipt(tx_hash=h, status=hexint(r["status"]), block_number=hexint(r["blockNumber"]),
                   gas_used=hexint(r["gasUsed"]), effective_gas_price=hexint(r["effectiveGasPrice"]),
                   logs=[Log.from_rpc(lg) for lg in r.get("logs") or []], l1_fee=receipt_l1_fee(r))


def approval_key(tx: TxRequest) -> tuple[str, str]:
    """(token, spender) of ``approve(spender, amount)`` calldata."""
    return to_checksum_address(tx.to), "0x" + tx.data[16:36].hex()


def _has(message: str, words: Sequence[str]) -> bool:
    m = message.lower()
    return any(w in m for w in words)


class TxManager:
    def __init__(self, chain: Chain, signer: Signer, store: Store, policy: FeePolicy, chain_id: int, *,
                 check: Check | None = None, on_settled: Callable[[Settled], Awaitable[None]] | None = None,
                 min_balance: int = 0, poll_interval: float = 1.0, submitter: Submitter | None = None,
                 events: TxEvents | None = None):
        self.chain = chain
        self.signer = signer
        self.address = signer.address
        self.store = store
        self.policy = policy
        self.chain_id = chain_id
        self.check = check
        self.on_settled = on_settled
        self.min_balance = min_balance
        self.poll_interval = poll_interval
        self.submitter = submitter  # a relay instead of the public mempool
        self.events = events
        self.stopping = False  # set on shutdown: nothing new is sent
        self.next_nonce: int | None = None
        self.head = -1  # the last block fully handled by tick
        self.last_mined = -1  # the highest block a receipt of ours was seen in
        self.slots: dict[int, _Slot] = {}
        self._attempts: dict[int, tuple[str, tuple[str, ...]]] = {}  # open attempt -> (protocol, accounts)
        self._receipts: dict[str, Receipt] = {}
        self._settled_at: dict[tuple[str, str], int] = {}  # account -> last block its settled attempt mined in
        self._latest: int | None = None  # the node's nonce for the signer at the last sync
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._low_balance = False
        self.polls_failed = 0
        # Told by the block loop (the daemon's run): the heads it handled, the nonce check it made
        # (sync) and the balance it read at a block. While ``following``, the loop's heads are used
        # instead of polling eth_blockNumber, and a round with nothing in flight asks nothing the
        # block loop asked at that block already.
        self.following = False
        self._told_head: int | None = None
        self._synced_at: int | None = None
        self._balance_at: int | None = None
        self._ask_head = False

    # ---- what the block loop asks -------------------------------------------------------------

    def in_flight(self, block: int | None = None) -> set[tuple[str, str]]:
        """(protocol, account) of every attempt with a transaction in flight; with ``block`` (the
        state a plan is made on) also those whose transactions were mined after it: that state does
        not show their effect yet."""
        out = {(p, a) for p, accounts in self._attempts.values() for a in accounts}
        if block is not None:
            out |= {k for k, mined in self._settled_at.items() if mined > block}
        return out

    def unmined(self) -> list[TxRequest]:
        """Our transactions in flight, in nonce order (a simulation runs them first); cancels do
        nothing and are left out."""
        return [s.request for _, s in sorted(self.slots.items()) if s.kind != TxKind.CANCEL]

    async def unmined_at(self, block: int | AtHash) -> list[TxRequest]:
        """Our transactions not mined as of ``block``, in nonce order: what a simulation on that
        block's state must run first. Decided by receipts (one batch), mined at or below ``block``:
        the polls may lag the node (a transaction mined already must not run twice), and a node's
        nonce for its newest block may come from the state it is building (Anvil's, while mining)."""
        if not self.slots:
            return []
        number = block.number if isinstance(block, AtHash) else block
        slots = sorted(self.slots.items())
        hashes = [h for _, s in slots for h in s.hashes]
        try:
            answers = await self.chain.rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes],
                                                 raise_errors=False)
        except RpcError:  # receipts unreadable now: the signer's nonce at that block says instead
            mined_below = await self.chain.nonce(self.address, block)
            return [s.request for n, s in slots if n >= mined_below and s.kind != TxKind.CANCEL]
        mined_by = {h for h, r in zip(hashes, answers, strict=True)
                    if isinstance(r, dict) and r.get("blockNumber") and hexint(r["blockNumber"]) <= number}
        return [s.request for _, s in slots if s.kind != TxKind.CANCEL and not mined_by & set(s.hashes)]

    def pending_approvals(self) -> set[tuple[str, str]]:
        """(token, spender) of approvals in flight (``approve(spender, amount)`` calldata)."""
        return {approval_key(s.request) for s in self.slots.values()
                if s.kind == TxKind.APPROVAL}

    async def idle(self, timeout: float | None = None) -> None:
        """Wait until nothing is in flight (tests; the daemon never waits for this)."""
        self.poke()
        await asyncio.wait_for(self._idle.wait(), timeout)

    def poke(self) -> None:
        """Poll now rather than after the poll interval (the node's head asked, even while following)."""
        self._ask_head = True
        self._wake.set()

    def head_seen(self, head: int) -> None:
        """The block loop handled ``head`` (its step is done): the next round is for it."""
        if self._told_head is None or head > self._told_head:
            self._told_head = head
        self._wake.set()

    def balance_seen(self, head: int, wei: int) -> None:
        """The block loop read the signer's balance at ``head``: the low-balance check is made on it
        and the round of that block does not ask again."""
        self._balance(wei)
        self._balance_at = head

    # ---- start, run, stop ---------------------------------------------------------------------

    async def start(self) -> None:
        """Reconcile the journal with the chain, then run the per-block loop on its own task."""
        head = await self.chain.block_number()
        async with self._lock:
            await self._reconcile(head, "start-up")
        self._task = asyncio.create_task(self._loop(), name="txmanager")

    async def close(self) -> None:
        self.stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # its failures were logged
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                if self.following and self._told_head is not None and not self._ask_head:
                    head = self._told_head
                else:
                    self._ask_head = False
                    head = await self.chain.block_number()
                if head != self.head:
                    await self.tick(head)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the next round tries again; the journal holds the state
                log.warning("txm.round_failed", error=str(e)[:300], error_type=type(e).__name__)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def tick(self, head: int) -> None:
        """One block: nonce check (and reconcile), receipts, settlements, re-simulation, replacements."""
        async with self._lock:
            if self._synced_at != head:  # the block loop checked the nonces at this head already
                await self._sync(head)
            if (self.slots or self._attempts or self._balance_at != head) and not await self._poll(head):
                return  # a bad answer: nothing decided, the next round asks again
            await self._settle_finished()
            await self._advance(head)
            self.head = head
            self._update_idle()

    async def sync(self, head: int) -> None:
        """Before the block loop plans at ``head``: notice a rollback or a lost mempool and put the
        journal right first, so that nothing is planned for what is still (or again) in flight."""
        async with self._lock:
            await self._sync(head)
            self._synced_at = head

    # ---- sending ------------------------------------------------------------------------------

    async def submit(self, sub: Submission, market: Fees) -> Submitted:
        """Journal the plan and its transactions, then broadcast them in order. Returns once the node
        took them (or refused one: the rest is not sent)."""
        if self.stopping:
            return Submitted(None, (), "the keeper is stopping: nothing new is sent")
        async with self._lock:
            if self.next_nonce is None:
                await self._resync_nonce()
            ceiling = self.policy.budget_per_gas(sub.gross_wei, sub.gas)
            attempt = NewAttempt(
                protocol=sub.protocol, accounts=sub.accounts, plan_kind=sub.plan_kind, decision=Decision.SEND,
                created_block=sub.block, details={**sub.details, "fee_budget_per_gas": ceiling})
            fees = self.policy.first(market, gross_wei=sub.gross_wei, gas=sub.gas)
            aid, first = await self._journal_attempt(attempt, sub.txs[0], fees)
            hashes: list[str] = []
            error = None
            for i, (kind, req) in enumerate(sub.txs):
                sent, refused = await self._send_new(aid, kind, req, fees, sub.block, ceiling,
                                                     journaled=first if i == 0 else None)
                if sent is None:
                    error = f"sending {req.what or kind.value} failed" + (
                        " after earlier transactions went out" if hashes else "") + f": {refused}"
                    break
                hashes.append(sent)
            if hashes:
                self._attempts[aid] = (sub.protocol, sub.accounts)
                self._idle.clear()
            return Submitted(aid, tuple(hashes), error)

    async def _journal_attempt(self, attempt: NewAttempt, first: tuple[TxKind, TxRequest],
                               fees: Fees) -> tuple[int, TxRecord | None]:
        """Journal the attempt with its first transaction signed at the next nonce, in one commit
        (a store round trip less on the way to the node); (the attempt id, that transaction). When
        the journal has that transaction's hash already (the same one signed before and refused):
        the attempt alone, its first transaction is journaled as the others are."""
        assert self.next_nonce is not None
        kind, req = first
        assert req.gas is not None
        raw, tx_hash = self.signer.sign(self._tx_dict(self.next_nonce, req, req.gas, fees))
        tx = NewTx(attempt_id=0, kind=kind, sender=self.address, nonce=self.next_nonce, tx_hash=tx_hash,
                   max_fee=fees.max_fee, max_priority=fees.priority_fee, gas_limit=req.gas, raw="0x" + raw.hex())
        try:
            return await self.store.add_attempt_with(attempt, tx)
        except JournalError:
            if await self.store.transaction(tx_hash) is None:
                raise
        return await self.store.add_attempt(attempt), None

    def _tx_dict(self, nonce: int, req: TxRequest, gas: int, fees: Fees) -> dict[str, Any]:
        return {"type": 2, "chainId": self.chain_id, "nonce": nonce, "to": to_checksum_address(req.to),
                "data": "0x" + req.data.hex(), "value": req.value, "gas": gas, "maxFeePerGas": fees.max_fee,
                "maxPriorityFeePerGas": fees.priority_fee}

    async def _send_new(self, aid: int, kind: TxKind, req: TxRequest, fees: Fees, block: int,
                        ceiling: int | None, journaled: TxRecord | None = None) -> tuple[str | None, str | None]:
        """Sign, journal and broadcast one transaction at the next nonce (``journaled``: signed and
        journaled with its attempt already): (its hash, None), or (None, the node's refusal)."""
        assert self.next_nonce is not None and req.gas is not None
        nonce = self.next_nonce
        rec = journaled if journaled is not None else await self._journal(aid, kind, nonce, req, fees)
        refused = await self._broadcast(rec.raw, rec.tx_hash)
        if refused is not None:
            await self.store.set_status(rec.tx_hash, TxStatus.DROPPED, note=f"refused by the node: {refused}"[:500])
            self._event(TxEvent.DROPPED, rec.tx_hash)
            if _has(refused, _NONCE_USED):
                await self._resync_nonce()
            log.warning("txm.refused", what=req.what, nonce=nonce, error=refused[:300])
            return None, refused
        self.next_nonce = nonce + 1
        self.slots[nonce] = _Slot(nonce, aid, kind, req, rec, [rec.tx_hash], block, ceiling,
                                  lowest_since=None if self.slots else block)
        log.info("txm.sent", what=req.what, nonce=nonce, tx_hash=rec.tx_hash, max_fee=fees.max_fee,
                 tip=fees.priority_fee)
        return rec.tx_hash, None

    async def _journal(self, aid: int, kind: TxKind, nonce: int, req: TxRequest, fees: Fees,
                       replaces: str | None = None) -> TxRecord:
        """Sign and journal (pending) one transaction. The same transaction signed again after the
        node refused it would have the same hash: its gas limit is then raised by one unit, so
        every journal row is its own transaction."""
        assert req.gas is not None
        gas = req.gas
        while True:
            raw, tx_hash = self.signer.sign(self._tx_dict(nonce, req, gas, fees))
            try:  # the journal refuses a hash it has (asked only then: one store round trip a transaction)
                return await self.store.add_transaction(NewTx(
                    attempt_id=aid, kind=kind, sender=self.address, nonce=nonce, tx_hash=tx_hash,
                    max_fee=fees.max_fee, max_priority=fees.priority_fee, gas_limit=gas, raw="0x" + raw.hex(),
                    replaces=replaces))
            except JournalError:
                if await self.store.transaction(tx_hash) is None:
                    raise
            gas += 1

    def _event(self, event: TxEvent, tx_hash: str) -> None:
        if self.events is not None:
            self.events.tx_event(event, tx_hash)

    async def _broadcast(self, raw: str, tx_hash: str, *, public: bool = False) -> str | None:
        """None when the node has the transaction (or might: a timeout leaves it to the next poll and
        reconcile); else the node's refusal. With a relay (and not ``public``) it goes there; the relay
        falls back or gives up on its own (see _advance)."""
        if self.submitter is not None and not public:
            await self.submitter.submit(raw, tx_hash)
            return None
        try:
            await self.chain.rpc.request("eth_sendRawTransaction", [raw])
        except TransientRpcError as e:
            log.warning("txm.send_unsure", error=str(e)[:300])
            return None
        except RpcError as e:
            return None if _has(str(e), _KNOWN) else str(e)
        return None

    async def _resync_nonce(self) -> None:
        pending = await self.chain.nonce(self.address, "pending")
        self.next_nonce = max([pending, *(n + 1 for n in self.slots)])

    # ---- per block ----------------------------------------------------------------------------

    async def _nonces(self) -> tuple[int, int]:
        latest, pending = await self.chain.rpc.batch([("eth_getTransactionCount", [self.address, "latest"]),
                                                       ("eth_getTransactionCount", [self.address, "pending"])])
        return hexint(latest), hexint(pending)

    async def _sync(self, head: int) -> None:
        """Not skipped for a head seen before: after a rollback the same number is another block."""
        latest, pending = await self._nonces()
        if self._latest is not None and latest < self._latest:
            await self._reconcile(head, f"the node's nonce went back from {self._latest} to {latest} (rollback)")
        elif self.submitter is None and any(n >= pending and s.sent_block < head for n, s in self.slots.items()):
            # (Through a relay our transactions are not in the node's pool: the relay tracks them.)
            await self._reconcile(head, f"the node counts {pending} transactions, ours go up to "
                                        f"{max(self.slots) + 1} (lost from its pool)")
        else:
            self._latest = latest

    async def _poll(self, head: int) -> bool:
        """Receipts of every hash in flight, the nonce and the balance, in one batch."""
        slots = sorted(self.slots.values(), key=lambda s: s.nonce)
        hashes = [h for s in slots for h in s.hashes]
        calls: list[tuple[str, list[Any]]] = [("eth_getTransactionCount", [self.address, "latest"]),
                                              ("eth_getBalance", [self.address, "latest"])]
        calls += [("eth_getTransactionReceipt", [h]) for h in hashes]
        try:
            answers = await self.chain.rpc.batch(calls, raise_errors=False)
        except Exception as e:
            self.polls_failed += 1
            log.warning("txm.poll_failed", block=head, error=str(e)[:300], error_type=type(e).__name__)
            return False
        latest = self._int(answers[0])
        self._balance(self._int(answers[1]))
        by_hash = dict(zip(hashes, answers[2:]))
        for s in slots:
            got = [(h, by_hash[h]) for h in s.hashes]
            if any(isinstance(r, Exception) or (r is not None and not isinstance(r, dict)) for _, r in got):
                continue  # a bad answer for this nonce: undecided until the next poll
            mined = [(h, r) for h, r in got if isinstance(r, dict) and r.get("blockNumber")]
            if mined:
                try:
                    rc = _receipt(mined[0][0], mined[0][1])
                except (KeyError, TypeError, ValueError):
                    continue  # a malformed receipt: ask again
                await self._mined(s, rc)
            elif latest is not None and latest > s.nonce:
                s.consumed += 1
                if s.consumed >= 2:  # used by a transaction the journal does not know
                    await self._resolve(s, None, f"nonce {s.nonce} used by a transaction not in the journal")
        return True

    @staticmethod
    def _int(answer: Any) -> int | None:
        try:
            return hexint(answer) if isinstance(answer, str) else None
        except ValueError:
            return None

    def _balance(self, wei: int | None) -> None:
        if wei is None or self.min_balance <= 0:
            return
        low = wei < self.min_balance
        if low and not self._low_balance:
            log.warning("wallet.low_balance", balance_wei=wei, min_balance_wei=self.min_balance,
                        note="transactions may fail for want of gas money")
        elif not low and self._low_balance:
            log.info("wallet.balance_ok", balance_wei=wei)
        self._low_balance = low

    async def _mined(self, s: _Slot, rc: Receipt) -> None:
        status = TxStatus.CONFIRMED if rc.status == 1 else TxStatus.REVERTED
        await self.store.set_status(rc.tx_hash, status, block=rc.block_number, gas_used=rc.gas_used)
        self._receipts[rc.tx_hash] = rc
        self.last_mined = max(self.last_mined, rc.block_number)
        await self._resolve(s, rc.tx_hash, f"nonce {s.nonce} used by {rc.tx_hash}")
        log.info("txm.mined", nonce=s.nonce, tx_hash=rc.tx_hash, status=status.value, block=rc.block_number)

    async def _resolve(self, s: _Slot, mined: str | None, note: str) -> None:
        """The nonce is used: every other hash signed at it is dropped; the slot is done."""
        for h in s.hashes:
            if h != mined:
                rec = await self.store.transaction(h)
                if rec is not None and rec.status not in MINED:
                    await self.store.set_status(h, TxStatus.DROPPED, note=note)
                    self._event(TxEvent.DROPPED, h)
        self.slots.pop(s.nonce, None)

    async def _settle_finished(self) -> None:
        busy = {s.attempt_id for s in self.slots.values()}
        for aid in [a for a in self._attempts if a not in busy]:
            await self.settle_attempt(aid)
            del self._attempts[aid]  # after: a settlement that failed is tried again next round

    async def settle_attempt(self, aid: int) -> Settled:
        """The attempt's outcome from the journal, with its receipts (fetched if not seen), handed to
        on_settled."""
        outcome = await self.store.outcome(aid)
        mined = [t.tx_hash for t in outcome.txs if t.status in MINED]
        missing = [h for h in mined if h not in self._receipts]
        if missing:
            answers = await self.chain.rpc.batch([("eth_getTransactionReceipt", [h]) for h in missing])
            for h, r in zip(missing, answers):
                if isinstance(r, dict):
                    self._receipts[h] = _receipt(h, r)
        notes: dict[str, str] = {}
        for t in outcome.txs:
            if t.status == TxStatus.DROPPED:
                why = [x.note for x in await self.store.transitions(t.tx_hash) if x.note]
                if why:
                    notes[t.tx_hash] = why[-1]
        settled = Settled(outcome, {h: self._receipts.pop(h) for h in mined if h in self._receipts}, notes)
        last = max((t.block or 0 for t in outcome.txs if t.status in MINED), default=0)
        self._settled_at = {k: b for k, b in self._settled_at.items() if b + 64 > last}  # keep recent ones
        for a in outcome.attempt.accounts:
            self._settled_at[(outcome.attempt.protocol, a)] = max(last, self._settled_at.get(
                (outcome.attempt.protocol, a), 0))
        if self.on_settled is not None:
            await self.on_settled(settled)
        return settled

    def _update_idle(self) -> None:
        if self.slots or self._attempts:
            self._idle.clear()
        else:
            self._idle.set()

    async def _market(self) -> Fees:
        f = await current_fees(self.chain, max_priority_fee=self.policy.max_tip,
                               percentile=self.policy.tip_percentile)
        return self.policy.market(f.base_fee, f.priority_fee)

    async def _advance(self, head: int) -> None:
        """Cancel what would now revert; replace what has waited ``replace_after`` blocks. Waiting
        counts once the queue is stuck: our lowest pending nonce has waited that long since nothing of
        ours was ahead of it (a transaction behind our own unmined ones is not stuck by itself: the
        node mines them in nonce order, one per block on an automining node)."""
        market: Fees | None = None
        before: list[TxRequest] = []
        stuck = False
        if self.slots:
            low = self.slots[min(self.slots)]
            if low.lowest_since is None:
                low.lowest_since = head
            stuck = head - max(low.sent_block, low.lowest_since) >= self.policy.replace_after
        for n in sorted(self.slots):
            s = self.slots[n]
            given_up = self.submitter.abandoned(s.current.tx_hash) if self.submitter is not None else None
            if given_up is not None and s.kind != TxKind.CANCEL:
                await self._given_up(s, given_up)
                continue
            if s.kind == TxKind.LIQUIDATION and self.check is not None and head > s.sent_block and head > s.checked:
                s.checked = head
                try:
                    reason = await self.check(before, s.request, head)
                except Exception as e:  # no answer: nothing says it is gone
                    log.warning("txm.recheck_failed", nonce=n, error=str(e)[:300], error_type=type(e).__name__)
                    reason = None
                if reason is not None:
                    market = market or await self._market()
                    await self._cancel(s, reason, market, head)
                    continue
            if stuck and head - s.sent_block >= self.policy.replace_after:
                market = market or await self._market()
                await self._replace(s, market, head)
            if s.kind != TxKind.CANCEL:
                before.append(s.request)

    async def _given_up(self, s: _Slot, why: str) -> None:
        """The relay gave up on the slot's transaction without making it public: past its target
        blocks it can no longer be included, so it is dropped and its nonce is free again."""
        for h in s.hashes:
            rec = await self.store.transaction(h)
            if rec is not None and rec.status == TxStatus.PENDING:
                await self.store.set_status(h, TxStatus.DROPPED, note=f"relay {why}"[:500])
                self._event(TxEvent.DROPPED, h)
        self.slots.pop(s.nonce, None)
        await self._resync_nonce()
        log.warning("txm.relay_gave_up", nonce=s.nonce, tx_hash=s.current.tx_hash, reason=why[:300])

    async def _replace(self, s: _Slot, market: Fees, head: int) -> None:
        old = s.current
        fees = self.policy.bumped(old.max_fee, old.max_priority, market,
                                  ceiling=None if s.kind == TxKind.CANCEL else s.ceiling)
        if fees is None:
            if not s.stuck_logged:
                log.warning("txm.stuck", nonce=s.nonce, tx_hash=old.tx_hash, max_fee=old.max_fee,
                            base_fee=market.base_fee, why="a valid bump would exceed the cap or the fee budget")
                s.stuck_logged = True
            return
        await self._supersede(s, s.kind, s.request, fees, head, "replaced")

    async def _cancel(self, s: _Slot, reason: str, market: Fees, head: int) -> None:
        old = s.current
        fees = self.policy.bumped(old.max_fee, old.max_priority, market)
        if fees is None:
            if not s.stuck_logged:
                log.warning("txm.cannot_cancel", nonce=s.nonce, tx_hash=old.tx_hash, reason=reason,
                            why="a valid bump would exceed max_gas_price_gwei")
                s.stuck_logged = True
            return
        req = TxRequest(self.address, b"", 0, gas=CANCEL_GAS, what=f"cancel nonce {s.nonce}")
        log.info("txm.cancelling", nonce=s.nonce, tx_hash=old.tx_hash, reason=reason[:300])
        await self._supersede(s, TxKind.CANCEL, req, fees, head, "cancelled")

    async def _supersede(self, s: _Slot, kind: TxKind, req: TxRequest, fees: Fees, head: int, verb: str) -> None:
        """Journal and send a transaction at ``s``'s nonce in place of its current one."""
        old = s.current
        rec = await self._journal(s.attempt_id, kind, s.nonce, req, fees, replaces=old.tx_hash)
        refused = await self._broadcast(rec.raw, rec.tx_hash, public=kind == TxKind.CANCEL)
        if refused is not None:
            await self.store.set_status(rec.tx_hash, TxStatus.DROPPED, note=f"refused by the node: {refused}"[:500])
            s.hashes.append(rec.tx_hash)
            log.warning("txm.replace_refused", nonce=s.nonce, error=refused[:300])
            if not _has(refused, _NONCE_USED):  # the old transaction is still the live one at this nonce
                await self.store.set_status(old.tx_hash, TxStatus.DROPPED, note="its replacement was refused")
                await self.store.set_status(old.tx_hash, TxStatus.PENDING, note="still the live transaction")
            # else: something took the nonce meanwhile (the old one, most likely): the next poll says
            return
        s.kind, s.request, s.current, s.sent_block, s.stuck_logged = kind, req, rec, head, False
        s.hashes.append(rec.tx_hash)
        self._event(TxEvent.CANCELLED if kind == TxKind.CANCEL else TxEvent.REPLACED, old.tx_hash)
        log.info(f"txm.{verb}", nonce=s.nonce, old=old.tx_hash, new=rec.tx_hash, max_fee=fees.max_fee,
                 tip=fees.priority_fee)

    # ---- reconcile ----------------------------------------------------------------------------

    async def _reconcile(self, head: int, why: str) -> None:
        """Every unfinished journal entry (and every one mined at a nonce the node has not reached
        any more) against the chain; the slots are rebuilt from the result."""
        latest, pending = await self._nonces()
        recs = {r.tx_hash: r for r in await self.store.transactions_from_nonce(self.address, latest)}
        for r in await self.store.unfinished(self.address):
            for t in await self.store.transactions(r.attempt_id):
                if t.nonce == r.nonce:
                    recs[t.tx_hash] = t
        by_nonce: dict[int, list[TxRecord]] = {}
        for r in sorted(recs.values(), key=lambda r: r.id):
            by_nonce.setdefault(r.nonce, []).append(r)
        if by_nonce:
            log.info("txm.reconcile", why=why, nonces=sorted(by_nonce), node_nonce=latest, node_pending=pending)
        hashes = [r.tx_hash for n in sorted(by_nonce) for r in by_nonce[n]]
        answers = await self.chain.rpc.batch([(m, [h]) for h in hashes
                                              for m in ("eth_getTransactionReceipt", "eth_getTransactionByHash")])
        receipt = {h: answers[2 * i] for i, h in enumerate(hashes)}
        known = {h: answers[2 * i + 1] for i, h in enumerate(hashes)}
        self.slots = {}
        before: list[TxRequest] = []
        market: Fees | None = None
        for n in sorted(by_nonce):
            group = by_nonce[n]
            if any(isinstance(x, Exception) or (x is not None and not isinstance(x, dict))
                   for r in group for x in (receipt[r.tx_hash], known[r.tx_hash])):
                # A bad answer: keep what is pending at this nonce in flight; the polls decide.
                live = [r for r in group if r.status == TxStatus.PENDING]
                if live:
                    await self._keep(n, live[-1], [r.tx_hash for r in group], head)
                continue
            mined = [r for r in group if isinstance(receipt[r.tx_hash], dict) and receipt[r.tx_hash].get("blockNumber")]
            if mined:
                rc = _receipt(mined[0].tx_hash, receipt[mined[0].tx_hash])
                status = TxStatus.CONFIRMED if rc.status == 1 else TxStatus.REVERTED
                changed = await self.store.set_status(rc.tx_hash, status, block=rc.block_number,
                                                      gas_used=rc.gas_used, note="found mined")
                self._receipts[rc.tx_hash] = rc
                for r in group:
                    if r.tx_hash != rc.tx_hash:
                        changed = await self._drop(r, f"nonce {n} used by {rc.tx_hash}") or changed
                if changed:  # settled before otherwise
                    await self._track_attempt(mined[0].attempt_id)
                continue
            if n < latest:  # used by a transaction the journal does not know
                changed = False
                for r in group:
                    changed = await self._drop(r, f"nonce {n} used by a transaction not in the journal") or changed
                if changed:
                    await self._track_attempt(group[-1].attempt_id)
                continue
            for r in group:  # the nonce is free again: what was mined there is back in flight
                if r.status in MINED:
                    await self.store.set_status(r.tx_hash, TxStatus.PENDING, note="its block is gone (rollback)")
            fresh = {t.tx_hash: t for t in [await self.store.transaction(r.tx_hash) for r in group] if t}
            live = [t for t in fresh.values() if t.status == TxStatus.PENDING]
            if not live:
                continue
            cur = live[-1]
            s = await self._keep(n, cur, [r.tx_hash for r in group], head)
            kind, req = s.kind, s.request
            if known[cur.tx_hash] is not None:  # still in the node's pool
                if kind != TxKind.CANCEL:
                    before.append(req)
                continue
            reason = None
            if kind == TxKind.LIQUIDATION and self.check is not None:
                try:
                    reason = await self.check(before, req, head)
                except Exception as e:  # no answer: nothing says it is gone
                    log.warning("txm.recheck_failed", nonce=n, error=str(e)[:300], error_type=type(e).__name__)
            market = market or await self._market()
            if reason is not None:
                await self._cancel(s, reason, market, head)
                continue
            refused = await self._broadcast(cur.raw, cur.tx_hash, public=kind == TxKind.CANCEL)
            if refused is not None and _has(refused, _UNDERPRICED):
                await self._replace(s, market, head)
            elif refused is not None:
                log.warning("txm.rebroadcast_refused", nonce=n, tx_hash=cur.tx_hash, error=refused[:300])
            else:
                log.info("txm.rebroadcast", nonce=n, tx_hash=cur.tx_hash)
            if s.kind != TxKind.CANCEL:
                before.append(s.request)
        self._latest = latest
        self.next_nonce = max([pending, *(n + 1 for n in self.slots)])
        self.head = -1  # poll at the next round, even at a block number seen before (a rollback reuses them)
        await self._settle_finished()
        self._update_idle()

    async def _keep(self, n: int, cur: TxRecord, hashes: list[str], head: int) -> _Slot:
        """Track ``cur`` (pending) as the live transaction at nonce ``n``."""
        attempt = await self.store.attempt(cur.attempt_id)
        ceiling = attempt.details.get("fee_budget_per_gas")
        req = _request(cur.raw, "cancel" if cur.kind == TxKind.CANCEL else f"{attempt.plan_kind} {cur.kind.value}")
        s = _Slot(n, cur.attempt_id, cur.kind, req, cur, hashes, head, ceiling if isinstance(ceiling, int) else None)
        self.slots[n] = s
        self._attempts[cur.attempt_id] = (attempt.protocol, attempt.accounts)
        return s

    async def _drop(self, r: TxRecord, note: str) -> bool:
        """``r`` is not and will not be mined (a mined one whose block is gone passes by pending);
        whether anything changed."""
        rec = await self.store.transaction(r.tx_hash)
        if rec is None or rec.status == TxStatus.DROPPED:
            return False
        if rec.status in MINED:
            await self.store.set_status(r.tx_hash, TxStatus.PENDING, note="its block is gone")
        await self.store.set_status(r.tx_hash, TxStatus.DROPPED, note=note)
        self._event(TxEvent.DROPPED, r.tx_hash)
        return True

    async def _track_attempt(self, aid: int) -> None:
        """Remember an attempt touched by reconcile, so that it is settled once nothing of it is in
        flight."""
        if aid not in self._attempts:
            a = await self.store.attempt(aid)
            self._attempts[aid] = (a.protocol, a.accounts)
