"""The Aave V3 incremental mirror: users' scaled balances, configuration bitmaps and eMode kept
locally, reserve indexes and prices read once per block, account data computed with the Pool's own
integer maths (keeper.protocols.aave_v3.accrual).

Per block the mirror sends ONE JSON-RPC batch: the logs of the Pool and of every aToken / debt
token since the last block mirrored, one aggregate3 (oracle prices and getReserveData of every
reserve, at the block) and the block header (its timestamp accrues the indexes). A user named by an
indexed topic of any of those logs (Supply, Borrow, Repay, Withdraw, LiquidationCall,
ReserveUsedAsCollateralEnabled/Disabled, aToken/debt-token Transfer, Mint, Burn, BalanceTransfer...)
is dirty: its bitmap, eMode and scaled balances are read again at the block (two multicalls for the
dirty users only). Nothing else is read for quiet users: their scaled balances do not change, and
prices and indexes are per reserve. Accrual re-checks the borrowers near liquidation every block
and all of them at most every ``recheck_blocks``.

A price change: when exactly one asset's price moved in the block (no configuration changed, not a
full re-check, the debt indexes within the triggers' interest margin), only the users whose trigger
price for that asset the new price reaches (keeper.protocols.price_index, triggers from
keeper.protocols.aave_v3.triggers) are re-checked before planning; every other user exposed to the
asset cannot be liquidatable at the new price, but its triggers for the other assets are stale: it
is ``deferred``, re-checked by ``settle`` once the block's plans are sent (the adapter's
after_block, a slice of time per block). Deferred users may wait through blocks where no price or
only that asset's moved again; any other move (or a full re-check) re-checks them before planning.
Several assets moved, a configuration change or a full re-check: every user exposed to a moved
asset is re-checked before planning.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

from keeper.abi import load
from keeper.chain.client import Chain, block_tag, hexint
from keeper.chain.multicall import Call, CallFailed, decode_aggregate3, encode_aggregate3, selector
from keeper.protocols.aave_v3.accrual import (
    UINT_MAX,
    AccountData,
    MirrorUser,
    ReserveIndex,
    ReserveTerms,
    account_data,
)
from keeper.protocols.aave_v3.triggers import account_with_triggers
from keeper.protocols.price_index import LiquidationPriceIndex, SortedPairs, always
from keeper.store.types import MirrorRow

log = structlog.get_logger()
ROW_VERSION = 1  # MirrorRow data: JSON [config, eMode, scaled aTokens, scaled variable debt, stable debt]
POOL = load("aave_v3/AaveV3Pool")
ORACLE = load("aave_v3/AaveOracle")
HF_ONE = 10**18
_SCALED = selector("scaledBalanceOf(address)")
_BALANCE = selector("balanceOf(address)")
_UCFG = selector("getUserConfiguration(address)")
_EMODE = selector("getUserEMode(address)")
ZERO = "0x0000000000000000000000000000000000000000"


def _u256(b: bytes) -> int:
    return int.from_bytes(b[:32], "big")


def _arg(addr: str) -> bytes:
    return bytes(12) + bytes.fromhex(addr[2:])


def _topic_address(topic: str) -> str | None:
    """The address an indexed topic holds, if it looks like one (12 zero bytes, then 20)."""
    if len(topic) == 66 and topic.startswith("0x000000000000000000000000"):
        return topic[26:]
    return None


@dataclass(frozen=True)
class ReserveAddrs:
    asset: str
    id: int
    a_token: str
    stable_debt: str
    variable_debt: str


@dataclass
class MirrorStats:
    """Counters a caller can report: blocks mirrored, users re-read, mismatches found by resync."""
    blocks: int = 0
    reread: int = 0
    rechecked: int = 0  # users whose health was computed before planning
    deferred: int = 0  # users whose health was computed after the plans were sent (settle)
    last_rechecked: int = 0  # of the last block, before planning
    resyncs: int = 0
    mismatches: int = 0
    confirm_mismatches: int = 0
    last_requests: int = 0


@dataclass
class AaveMirror:
    pool: str
    oracle: str
    recheck_blocks: int = 20
    # The triggers hold while the debt indexes grow less than this since the last full re-check
    # (beyond it, every exposed user is re-checked before planning).
    trigger_margin_bps: int = 10
    users: dict[str, MirrorUser] = field(default_factory=dict)  # checksummed address -> positions
    data: dict[str, AccountData] = field(default_factory=dict)  # last computed account data
    reserves: dict[str, ReserveAddrs] = field(default_factory=dict)
    index: dict[str, ReserveIndex] = field(default_factory=dict)
    config: dict[str, int] = field(default_factory=dict)  # asset -> reserve configuration word
    prices: dict[str, int] = field(default_factory=dict)
    emode_threshold: dict[int, int] = field(default_factory=dict)  # category -> liquidation threshold
    emode_price_source: dict[int, str] = field(default_factory=dict)
    exposure: dict[str, set[str]] = field(default_factory=dict)  # asset -> users holding / owing it
    by_lower: dict[str, str] = field(default_factory=dict)  # lower-case hex (no 0x) -> user
    timestamp: int = 0
    block: int = -1
    stats: MirrorStats = field(default_factory=MirrorStats)
    _near: SortedPairs = field(default_factory=SortedPairs)  # (hf, user) of borrowers, in order
    _hf: dict[str, int] = field(default_factory=dict)  # user -> its hf in _near
    changed: set[str] = field(default_factory=set)  # users re-read since rows() was last called
    triggers: LiquidationPriceIndex = field(default_factory=LiquidationPriceIndex)
    deferred: set[str] = field(default_factory=set)  # exposed to the block's move, re-checked by settle()
    _deferred_asset: str | None = None  # the asset whose move deferred them
    _uncomputed: set[str] = field(default_factory=set)  # e.g. users restored from the store
    _inexact: set[str] = field(default_factory=set)  # users holding stable debt (re-read every block)
    _debt_base: dict[str, int] = field(default_factory=dict)  # normalized debt the triggers hold from
    _next_base: dict[str, int] | None = None  # of the last full re-check, once every trigger is computed again
    stale: set[str] = field(default_factory=set)  # account data fresh, triggers not computed since

    # ---- durable state (MirrorRow per user, version ROW_VERSION) ------------------------------
    def rows(self) -> list[MirrorRow]:
        out = []
        for u in sorted(self.changed):
            m = self.users.get(u)
            if m is not None:
                data = json.dumps([m.config, m.emode, m.scaled_collateral, m.scaled_debt, m.stable_debt])
                out.append(MirrorRow(u, ROW_VERSION, self.block, data.encode()))
        self.changed.clear()
        return out

    def restore(self, rows: dict[str, MirrorRow], block: int) -> None:
        for u, r in rows.items():
            if r.version != ROW_VERSION:
                continue  # read again from chain
            cfg, em, coll, debt, stable = json.loads(r.data)
            self.users[u] = MirrorUser(cfg, em, coll, debt, stable)
            self.by_lower[u[2:].lower()] = u
            self._expose(u)
            self._uncomputed.add(u)
            if not self.users[u].exact:
                self._inexact.add(u)
        self.block = block

    # ---- per block ------------------------------------------------------------------------
    def addresses(self) -> list[str]:
        out = [self.pool]
        for r in self.reserves.values():
            out += [a for a in (r.a_token, r.variable_debt, r.stable_debt) if a != ZERO]
        return out

    async def advance(self, chain: Chain, block: int, known: Iterable[str]) -> set[str]:
        """Bring the mirror to ``block``; return the users whose health was computed again."""
        assets = list(self.reserves)
        rd = POOL.fn("getReserveData")
        prices_fn = ORACLE.fn("getAssetsPrices")
        calls = [Call(self.oracle, prices_fn.encode(assets), prices_fn.decode)]
        calls += [Call(self.pool, rd.encode(a), rd.decode) for a in assets]
        tag = block_tag(block)
        reqs: list[tuple[str, list]] = [
            ("eth_call", [{"to": chain.multicall_address, "data": "0x" + encode_aggregate3(calls).hex()}, tag]),
            ("eth_getBlockByNumber", [tag, False]),
        ]
        first = self.block < 0
        if not first and self.block < block <= self.block + chain.log_chunk_blocks:
            reqs.append(("eth_getLogs", [{"address": self.addresses(), "fromBlock": hex(self.block + 1),
                                          "toBlock": tag}]))
        answers = await chain.batch(reqs)
        self.stats.last_requests = 1
        res = decode_aggregate3(calls, bytes.fromhex(answers[0][2:]))
        if isinstance(res[0], CallFailed):
            raise RuntimeError(f"AaveOracle.getAssetsPrices failed at block {block}")
        new_prices = dict(zip(assets, res[0]))
        moved = {a for a, p in new_prices.items() if self.prices.get(a) != p}
        self.prices = new_prices
        reconfigured: set[str] = set()
        for a, d in zip(assets, res[1:]):
            if isinstance(d, CallFailed):
                raise RuntimeError(f"Pool.getReserveData({a}) failed at block {block}")
            if self.config.get(a) != d[0][0]:
                reconfigured.add(a)
            self.config[a] = d[0][0]
            self.index[a] = ReserveIndex(liquidity_index=d[1], variable_borrow_index=d[3], liquidity_rate=d[2],
                                         variable_borrow_rate=d[4], last_update=d[6])
        self.timestamp = hexint(answers[1]["timestamp"])
        dirty: set[str] = set()
        if first:
            dirty = set(known)
        elif len(reqs) == 3:
            for raw in answers[2]:
                for t in raw["topics"][1:]:
                    hexaddr = _topic_address(t.lower())
                    if hexaddr is not None and (u := self.by_lower.get(hexaddr)) is not None:
                        dirty.add(u)
        elif block > self.block:  # too long a gap to read its logs in one request: re-read everyone
            dirty = set(known)
        for u in known:
            if u not in self.users:
                dirty.add(u)
        dirty |= self._inexact & self.users.keys()
        if dirty:
            await self.reread(chain, sorted(dirty), block)
        self.block = block
        self.stats.blocks += 1
        return self.recompute(dirty, moved, block, reconfigured=reconfigured)

    # ---- reading users from chain ---------------------------------------------------------
    async def reread(self, chain: Chain, users: list[str], block: int) -> None:
        """Bitmap and eMode, then the scaled balances of the reserves the bitmap names."""
        calls: list[Call] = []
        for u in users:
            arg = _arg(u)
            calls += [Call(self.pool, _UCFG + arg, _u256), Call(self.pool, _EMODE + arg, _u256)]
        res = await chain.multicall(calls, block)
        by_id = {r.id: r for r in self.reserves.values()}
        bal_calls: list[Call] = []
        slots: list[tuple[MirrorUser, str, str]] = []
        for i, u in enumerate(users):
            cfg, em = res[2 * i], res[2 * i + 1]
            if isinstance(cfg, CallFailed) or isinstance(em, CallFailed):
                raise RuntimeError(f"Pool user reads failed for {u} at block {block}")
            m = MirrorUser(config=cfg, emode=em)
            self.users[u] = m
            self._inexact.discard(u)
            self.by_lower[u[2:].lower()] = u
            arg = _arg(u)
            for rid, r in by_id.items():
                bits = (cfg >> (2 * rid)) & 3
                if bits & 2:
                    bal_calls.append(Call(r.a_token, _SCALED + arg, _u256))
                    slots.append((m, "c", r.asset))
                if bits & 1:
                    bal_calls.append(Call(r.variable_debt, _SCALED + arg, _u256))
                    slots.append((m, "v", r.asset))
                    if r.stable_debt != ZERO:
                        bal_calls.append(Call(r.stable_debt, _BALANCE + arg, _u256))
                        slots.append((m, "s", r.asset))
        bals = await chain.multicall(bal_calls, block)
        for (m, kind, asset), v in zip(slots, bals):
            if isinstance(v, CallFailed):
                if kind == "s":
                    continue  # a fork without stable debt
                raise RuntimeError(f"scaled balance read failed ({asset}) at block {block}")
            book = m.scaled_collateral if kind == "c" else m.scaled_debt if kind == "v" else m.stable_debt
            book[asset] = v
        self._inexact.update(u for u in users if not self.users[u].exact)
        self.stats.reread += len(users)
        self.changed.update(users)
        for u in users:
            self._expose(u)
        emodes = {self.users[u].emode for u in users} - {0} - set(self.emode_threshold)
        if emodes:
            fn = POOL.fn("getEModeCategoryData")
            todo = sorted(emodes)
            cats = await chain.multicall_strict([Call(self.pool, fn.encode(c), fn.decode) for c in todo], block)
            for c, d in zip(todo, cats):
                self.emode_threshold[c] = d[1]
                self.emode_price_source[c] = d[3]

    def _expose(self, user: str) -> None:
        m = self.users[user]
        for a in self.reserves:
            s = self.exposure.setdefault(a, set())
            if a in m.assets():
                s.add(user)
            else:
                s.discard(user)

    # ---- health ---------------------------------------------------------------------------
    def terms(self) -> dict[str, ReserveTerms]:
        out = {}
        for a, r in self.reserves.items():
            c, ix = self.config[a], self.index[a]
            out[a] = ReserveTerms(id=r.id, decimals=(c >> 48) & 0xFF, liquidation_threshold=(c >> 16) & 0xFFFF,
                                  emode_category=(c >> 168) & 0xFF, price=self.prices[a],
                                  income=ix.normalized_income(self.timestamp),
                                  debt_index=ix.normalized_debt(self.timestamp))
        return out

    def inexact_users(self) -> set[str]:
        """The users exact() refuses, without a pass over every user unless an eMode category has
        a price source (v3.0-v3.1 only)."""
        out = self._inexact & self.users.keys()
        sourced = {c for c, s in self.emode_price_source.items() if int(s or ZERO, 16)}
        if sourced:
            out |= {u for u, mu in self.users.items() if mu.emode in sourced}
        return out

    def exact(self, user: str) -> bool:
        """Whether the local maths reproduces the Pool for this user (stable debt accrues at the
        user's own rate, an eMode price source replaces the oracle: such users are read on chain)."""
        m = self.users[user]
        return m.exact and not (m.emode and int(self.emode_price_source.get(m.emode, ZERO), 16))

    def account(self, user: str, terms: dict[str, ReserveTerms] | None = None) -> AccountData:
        m = self.users[user]
        return account_data(m, terms or self.terms(), self.emode_threshold.get(m.emode, 0))

    def recompute(self, dirty: set[str], moved: set[str], block: int, *,
                  reconfigured: set[str] | frozenset[str] = frozenset()) -> set[str]:
        """Health again, before planning, for: re-read users, borrowers near liquidation (interest
        accrues every second) or every borrower every ``recheck_blocks`` blocks; for a price move,
        the users whose trigger the new price reaches when one asset moved alone (and those exposed
        to it whose triggers are not computed yet: ``stale``), the other users exposed to it being
        deferred to ``settle``; every user exposed to a moved or reconfigured asset otherwise, and
        the deferred users unless only their asset moved again. Only account data is computed here:
        the triggers of the users computed are computed by ``settle``."""
        todo = dirty | self._uncomputed
        terms = self.terms()
        full = self.stats.blocks % self.recheck_blocks == 1 or self.recheck_blocks == 1
        if full:
            todo |= {u for u, d in self.data.items() if d.total_debt_base} | (self.users.keys() - self.data.keys())
            self._next_base = {a: t.debt_index for a, t in terms.items()}
        else:
            # the borrowers whose HF was below 1.05 (sorted by HF: a bisect finds them)
            todo.update(u for _, u in self._near.below(105 * 10**16))
        calm = not reconfigured and not full and self._within_margin(terms)
        asset = next(iter(moved)) if len(moved) == 1 and calm else None
        # Users deferred by an earlier move of one asset may wait on: their trigger for that asset
        # is right while no other price moved (their other triggers are stale).
        if self.deferred and not (calm and (not moved or asset == self._deferred_asset)):
            todo |= self.deferred
            self.deferred = set()
        if asset is not None:
            exposed = self.exposure.get(asset, set())
            todo |= self.triggers.at_risk(asset, self.prices[asset])
            todo |= self.stale & exposed
            self.deferred |= exposed - self.stale
            self._deferred_asset = asset
        else:
            for a in moved | reconfigured:
                todo |= self.exposure.get(a, set())
        self._compute(todo, terms, triggers=False)
        self.deferred -= todo
        self.stats.rechecked += len(todo)
        self.stats.last_rechecked = len(todo)
        return todo

    def settle(self, limit: int | None = None) -> set[str]:
        """Health and triggers again for (up to ``limit`` of) the deferred users, then triggers for
        the users computed without (``stale``), at the block mirrored: off the path from a new head
        to the plans sent. Returns the users whose account data was computed again."""
        todo: set[str] = set()
        while self.deferred and (limit is None or len(todo) < limit):
            todo.add(self.deferred.pop())
        fresh: set[str] = set()
        while self.stale and (limit is None or len(todo) + len(fresh) < limit):
            fresh.add(self.stale.pop())
        terms = self.terms()
        self._compute(todo | fresh, terms, triggers=True)
        self.stats.deferred += len(todo)
        if not self.deferred:
            self._deferred_asset = None
            if not self.stale and self._next_base is not None:
                self._debt_base, self._next_base = self._next_base, None  # every trigger computed since
        return todo | fresh

    def pending(self) -> int:
        """Users waiting for ``settle``."""
        return len(self.deferred) + len(self.stale)

    def recheck(self, users: set[str]) -> None:
        """Health again for ``users`` (e.g. re-read after a mismatch), nothing else."""
        self._compute(users, self.terms(), triggers=False)
        self.stats.rechecked += len(users)

    def _within_margin(self, terms: dict[str, ReserveTerms]) -> bool:
        """Whether every debt index grew less than the triggers' margin since the triggers were
        computed (the last full re-check whose users all got their triggers since)."""
        g = 10_000 + self.trigger_margin_bps
        return bool(self._debt_base) and all(
            a in self._debt_base and t.debt_index * 10_000 <= self._debt_base[a] * g for a, t in terms.items())

    def _compute(self, users: Iterable[str], terms: dict[str, ReserveTerms], *, triggers: bool) -> None:
        for u in users:
            m = self.users.get(u)
            if m is None:
                continue
            self._uncomputed.discard(u)
            threshold = self.emode_threshold.get(m.emode, 0)
            if triggers:
                d, trig = account_with_triggers(m, terms, threshold, self.trigger_margin_bps)
                if not self.exact(u):  # the local maths does not follow it: a candidate at every move
                    trig = {a: always() for a in m.assets()}
                self.triggers.put(u, trig)
                self.stale.discard(u)
            else:
                d = account_data(m, terms, threshold)
                self.stale.add(u)
            self.data[u] = d
            old = self._hf.pop(u, None)
            if old is not None:
                self._near.remove((old, u))
            if d.total_debt_base:
                self._near.add((d.health_factor, u))
                self._hf[u] = d.health_factor

    def liquidatable(self) -> list[str]:
        return [u for _, u in self._near.below(HF_ONE)]

    def health(self, user: str) -> int:
        return self.data[user].health_factor if user in self.data else UINT_MAX
