"""The Gearbox V3 incremental mirror: each credit account's debt record (creditAccountInfo: debt,
cumulativeIndexLastUpdate, cumulativeQuotaInterest, quotaFees, enabledTokensMask), collateral
balances and quotas (PoolQuotaKeeperV3.getQuota: quota and its cumulativeIndexLU) kept locally;
per credit manager, once per block, the market (prices, LTs, fees, debt limits, paused, loss policy:
the adapter's market views) and the indexes interest accrues with (PoolV3.baseInterestIndex(),
PoolQuotaKeeperV3.cumulativeIndex(token) of every quoted token, both at the block's timestamp).

calcDebtAndCollateral(DEBT_COLLATERAL) is then computed locally with the credit manager's own
integer maths (@gearbox-protocol/core-v3 CreditManagerV3._calcDebtAndCollateral): quota interest
= sum over enabled quoted tokens of quota x (indexNow - indexLU) / RAY, plus the stored
cumulativeQuotaInterest - 1; base interest = CreditLogic.calcAccruedInterest; fees = quotaFees +
feeInterest on both; CollateralLogic.calcCollateral over the enabled quoted tokens in mask order
(value x LT capped by quota) then the underlying. Interest and prices move every account at once,
so every account's health is recomputed each block (integers, no reads).

Per block the mirror sends ONE JSON-RPC batch: an aggregate3 of the market and index views (size
independent of the number of accounts; led by the block's on-demand price updates when the market
has pull feeds) and one eth_getLogs, since the last block mirrored, of the facades, pools, quota
keepers and collateral tokens, topic0 among the events that name a credit account (facade
Open/Close/Liquidate/PartiallyLiquidate/AddCollateral/WithdrawCollateral/StartMultiCall/Execute/
WithdrawPhantomToken, PoolV3.Borrow, PoolQuotaKeeperV3.UpdateQuota, ERC20 Transfer). An account an
indexed topic of any of them names is re-read at the block (one multicall for those only).
Tokens whose balance moves without a Transfer (rebasing) are not followed between resyncs.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog
from eth_utils import keccak

from keeper.chain.client import Chain, block_tag
from keeper.chain.multicall import Call, CallFailed, decode_aggregate3, encode_aggregate3, selector
from keeper.protocols.gearbox_v3 import maths as gm
from keeper.store.types import MirrorRow

log = structlog.get_logger()
ROW_VERSION = 1  # MirrorRow data: JSON [cm, debt, indexLU, cqi, quotaFees, mask, {token: balance}, {token: [q, iLU]}]
RAY = 10**27
_INFO = selector("creditAccountInfo(address)")
_BALANCE = selector("balanceOf(address)")
_QUOTA = selector("getQuota(address,address)")
_BASE_INDEX = selector("baseInterestIndex()")
_QUOTA_INDEX = selector("cumulativeIndex(address)")
EVENTS = (
    "OpenCreditAccount(address,address,address,uint256)",
    "CloseCreditAccount(address,address)",
    "LiquidateCreditAccount(address,address,address,uint256)",
    "PartiallyLiquidateCreditAccount(address,address,address,uint256,uint256,uint256)",
    "AddCollateral(address,address,uint256)",
    "WithdrawCollateral(address,address,uint256,address)",
    "StartMultiCall(address,address)",
    "WithdrawPhantomToken(address,address,uint256)",
    "Execute(address,address)",
    "UpdateQuota(address,address,int96)",  # PoolQuotaKeeperV3
    "Borrow(address,address,uint256)",  # PoolV3 (creditManager, creditAccount)
    "Transfer(address,address,uint256)",  # ERC20, to or from a credit account
)
TOPICS = ["0x" + keccak(text=e).hex() for e in EVENTS]


def _words(b: bytes) -> list[int]:
    return [int.from_bytes(b[i:i + 32], "big") for i in range(0, len(b), 32)]


def _u256(b: bytes) -> int:
    return int.from_bytes(b[:32], "big")


def _arg(addr: str) -> bytes:
    return bytes(12) + bytes.fromhex(addr[2:])


@dataclass
class Record:
    """One credit account as its credit manager and quota keeper store it."""
    cm: str
    debt: int = 0
    index_lu: int = 0  # cumulativeIndexLastUpdate
    cqi: int = 0  # stored cumulativeQuotaInterest (1 + the quota interest already accounted)
    quota_fees: int = 0
    mask: int = 0  # enabledTokensMask
    balances: dict[str, int] = field(default_factory=dict)
    quotas: dict[str, tuple[int, int]] = field(default_factory=dict)  # token -> (quota, cumulativeIndexLU)


@dataclass(frozen=True)
class Terms:
    """One credit manager at one block: what every account's health is computed from."""
    tokens: list[str]  # by mask order; [0] = underlying
    prices: dict[str, gm.Price]
    lts: dict[str, int]
    fee_interest: int
    base_index: int  # PoolV3.baseInterestIndex() at the block
    quota_index: dict[str, int]  # PoolQuotaKeeperV3.cumulativeIndex(token) at the block (readable ones)
    chain_read: frozenset[str] = frozenset()  # tokens whose balance moves without logs: read on chain


@dataclass(frozen=True)
class Health:
    """The local calcDebtAndCollateral(DEBT_COLLATERAL) and isLiquidatable(ca, 10000)."""
    debt: gm.Debt
    total_debt_usd: int
    total_value: int
    total_value_usd: int
    twv_usd: int

    @property
    def liquidatable(self) -> bool:
        return self.twv_usd < self.total_debt_usd


def health(r: Record, t: Terms) -> Health | None:
    """CreditManagerV3._calcDebtAndCollateral without hints; None when an enabled token is beyond
    the known tokens, its quota index is unreadable or it is to be read on chain (the account is then
    read on chain)."""
    enabled: list[str] = []
    mask, i = r.mask >> 1, 1
    while mask:
        if mask & 1:
            if i >= len(t.tokens) or t.tokens[i] not in t.quota_index or t.tokens[i] in t.chain_read:
                return None
            enabled.append(t.tokens[i])
        mask >>= 1
        i += 1
    outstanding = 0
    for tok in enabled:
        q, lu = r.quotas.get(tok, (0, 0))
        outstanding += q * (t.quota_index[tok] - lu) // RAY
    cqi = outstanding + r.cqi - 1
    index_lu = r.index_lu if r.debt else 0
    base = gm.calc_accrued_interest(r.debt, index_lu, t.base_index)
    fi = t.fee_interest
    fees = r.quota_fees + base * fi // gm.PERCENTAGE_FACTOR + cqi * fi // gm.PERCENTAGE_FACTOR
    debt = gm.Debt(r.debt, t.base_index, index_lu, cqi, base + cqi, fees)
    u = t.tokens[0]
    up = t.prices[u]
    total = debt.total
    total_debt_usd = gm.to_usd(total, up) if total else 0
    value = twv = 0
    for tok in enabled:
        v, w = gm.token_collateral(gm.Holding(tok, r.balances.get(tok, 0), t.prices[tok], t.lts[tok],
                                              r.quotas.get(tok, (0, 0))[0]), up)
        value += v
        twv += w
    v, w = gm.token_collateral(gm.Holding(u, r.balances.get(u, 0), up, t.lts[u], None), up)
    value += v
    twv += w
    return Health(debt, total_debt_usd, value * up.scale // up.price, value, twv)


def index_calls(pool: str, pqk: str, tokens: list[str]) -> list[Call]:
    """The indexes at the block: the pool's base index, then each quoted token's quota index."""
    return [Call(pool, _BASE_INDEX, _u256)] + [Call(pqk, _QUOTA_INDEX + _arg(tok), _u256) for tok in tokens[1:]]


def parse_indexes(tokens: list[str], row: list) -> tuple[int, dict[str, int]] | None:
    """(base index, {token: quota index}) from index_calls' results; None if the base index failed."""
    if isinstance(row[0], CallFailed):
        return None
    return row[0], {tok: x for tok, x in zip(tokens[1:], row[1:]) if not isinstance(x, CallFailed)}


@dataclass
class MirrorStats:
    """Counters a caller can report: blocks mirrored, accounts re-read, mismatches found by resync
    and by the on-chain confirmation of accounts found liquidatable."""
    blocks: int = 0
    reread: int = 0
    resyncs: int = 0
    mismatches: int = 0
    confirmed: int = 0
    chain_reads: int = 0  # accounts read on chain (found liquidatable, or not computed locally)
    confirm_mismatches: int = 0
    last_requests: int = 0  # JSON-RPC requests of the last block's batch


@dataclass
class GearboxMirror:
    records: dict[str, Record] = field(default_factory=dict)  # credit account -> record
    health: dict[str, Health] = field(default_factory=dict)  # last local health (exact accounts)
    by_lower: dict[str, str] = field(default_factory=dict)  # lower-case hex (no 0x) -> account
    block: int = -1
    stats: MirrorStats = field(default_factory=MirrorStats)
    changed: set[str] = field(default_factory=set)  # re-read since rows() was last called
    dropped: set[str] = field(default_factory=set)

    # ---- durable state ------------------------------------------------------------------------
    def rows(self) -> list[MirrorRow]:
        out = []
        for ca in sorted(self.changed):
            r = self.records.get(ca)
            if r is not None:
                data = [r.cm, r.debt, r.index_lu, r.cqi, r.quota_fees, r.mask, r.balances,
                        {t: list(q) for t, q in r.quotas.items()}]
                out.append(MirrorRow(ca, ROW_VERSION, self.block, json.dumps(data).encode()))
        self.changed.clear()
        return out

    def restore(self, rows: dict[str, MirrorRow], block: int) -> None:
        for ca, row in rows.items():
            if row.version != ROW_VERSION:
                continue  # read again from chain
            cm, debt, ilu, cqi, qf, mask, bals, quotas = json.loads(row.data)
            self.records[ca] = Record(cm, debt, ilu, cqi, qf, mask, dict(bals),
                                      {t: (q[0], q[1]) for t, q in quotas.items()})
            self.by_lower[ca[2:].lower()] = ca
        self.block = block

    def forget(self) -> None:
        self.records.clear()
        self.health.clear()
        self.by_lower.clear()
        self.block = -1

    # ---- per block ----------------------------------------------------------------------------
    async def fetch(self, chain: Chain, block: int, calls: list[Call],
                    addresses: list[str]) -> tuple[list, set[str] | None]:
        """One batch: aggregate3(calls) at ``block`` and the logs of ``addresses`` since the last
        block mirrored. Returns the calls' results and the known accounts the logs name (None: the
        logs could not be read in one request, or this is the first block: everyone is re-read)."""
        tag = block_tag(block)
        reqs: list[tuple[str, list]] = [
            ("eth_call", [{"to": chain.multicall_address, "data": "0x" + encode_aggregate3(calls).hex()}, tag])]
        logs = self.block >= 0 and self.block < block <= self.block + chain.log_chunk_blocks
        if logs:
            reqs.append(("eth_getLogs", [{"address": addresses, "topics": [TOPICS], "fromBlock": hex(self.block + 1),
                                          "toBlock": tag}]))
        answers = await chain.batch(reqs, raise_errors=False)
        self.stats.last_requests = len(reqs)
        if isinstance(answers[0], BaseException):
            raise answers[0]
        res = decode_aggregate3(calls, bytes.fromhex(answers[0][2:]))
        if not logs:
            return res, None if block != self.block else set()
        topics: list[list[str]]
        if isinstance(answers[1], BaseException):
            # e.g. too many logs for one answer: again through get_logs (smaller ranges), else everyone
            log.warning("gearbox.mirror_logs_failed", block=block, error=str(answers[1]))
            try:
                topics = [lg.topics for lg in await chain.get_logs(addresses, [TOPICS], self.block + 1, block)]
            except Exception as e:
                log.warning("gearbox.mirror_logs_failed", block=block, error=str(e), fallback="read every account")
                return res, None
        else:
            topics = [[t.lower() for t in raw["topics"]] for raw in answers[1]]
        dirty: set[str] = set()
        for ts in topics:
            for topic in ts[1:]:
                if topic.startswith("0x000000000000000000000000") and (a := self.by_lower.get(topic[26:])):
                    dirty.add(a)
        return res, dirty

    def sync(self, known: dict[str, str]) -> set[str]:
        """Drop accounts no longer known (closed); return the known ones without a record."""
        for ca in [ca for ca in self.records if ca not in known]:
            del self.records[ca]
            self.health.pop(ca, None)
            self.by_lower.pop(ca[2:].lower(), None)
        return {ca for ca in known if ca not in self.records}

    async def read(self, chain: Chain, accounts: list[tuple[str, str, str, list[str]]], block: int) -> None:
        """creditAccountInfo, every balance and quota of ``accounts`` ((ca, credit manager, quota
        keeper, tokens)) at ``block``, in one multicall."""
        calls: list[Call] = []
        for ca, cm, pqk, tokens in accounts:
            arg = _arg(ca)
            calls.append(Call(cm, _INFO + arg))
            calls += [Call(tok, _BALANCE + arg, _u256) for tok in tokens]
            calls += [Call(pqk, _QUOTA + arg + _arg(tok)) for tok in tokens[1:]]
        res = await chain.multicall(calls, block)
        at = 0
        for ca, cm, _, tokens in accounts:
            n = 1 + 2 * len(tokens) - 1
            row = res[at:at + n]
            at += n
            if any(isinstance(x, CallFailed) for x in row):
                raise RuntimeError(f"credit account reads failed for {ca} at block {block}")
            w = _words(row[0])
            bals = row[1:1 + len(tokens)]
            quotas = [_words(q) for q in row[1 + len(tokens):]]
            self.records[ca] = Record(cm, w[0], w[1], w[2], w[3], w[4], dict(zip(tokens, bals)),
                                      {tok: (q[0], q[1]) for tok, q in zip(tokens[1:], quotas)})
            self.by_lower[ca[2:].lower()] = ca
        self.stats.reread += len(accounts)
        self.changed.update(ca for ca, *_ in accounts)

    def compute(self, accounts: Iterable[str], terms: dict[str, Terms]) -> set[str]:
        """Local health of ``accounts`` (whose manager has terms this block); returns those the
        local maths cannot follow (read on chain instead)."""
        inexact = set()
        for ca in accounts:
            r = self.records.get(ca)
            t = terms.get(r.cm) if r is not None else None
            h = health(r, t) if r is not None and t is not None else None
            if h is None:
                self.health.pop(ca, None)
                inexact.add(ca)
            else:
                self.health[ca] = h
        return inexact
