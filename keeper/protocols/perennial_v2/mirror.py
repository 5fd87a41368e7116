"""The Perennial V2 incremental mirror: each account's settled position, collateral and pending orders
kept locally, re-read from the Market (settle then read, in one Multicall3 eth_call) only when a
Market log names it (OrderCreated, AccountPositionProcessed, FeeClaimed, ExposureClaimed: any
address topic) or when a new latest version may settle its pending order.

Per block, for all markets together: ONE JSON-RPC batch (the block header, the markets' logs since
the last block mirrored, and one eth_call of every market-level read: router epoch, keeper and oracle
factory parameters, risk, oracle status, keeper oracle global, the keeper's own local, the market
settled in the call then its position and global, the gas oracles' costs), then ONE batch of
eth_calls: the keeper oracle's requests not seen yet, the versions' receipts, callbacks and
responses, the settles crediting the keeper, and the re-read accounts only. A quiet block costs the
same whatever the number of accounts.

Collateral between re-reads. The Market moves an account's collateral, from its checkpoint version
to the latest, by the accumulated values (per unit of maker / long / short position) times its
position (CheckpointLib, one difference, truncated toward zero). The mirror keeps its own running
accumulator per market and follows the settlement as VersionLib makes it: for each version with
orders between the previous latest version and the new one (their OrderCreated logs, summed per
version; each version's price read with the market-level calls), maths.step_values (price PnL and
funding) from the global state before it, then its orders applied if it is valid; then the sync to
the new latest version. The global state it arrives at must be the one the Market shows (position,
price, funding rate, skew); otherwise (orders it did not see, too many versions at once) the frame
starts again and every account of the market is read. An account read with no order processed by
the settle is anchored at its on-chain checkpoint (collateral, version, the accumulator there): its
later collateral is anchor + accumulated(acc - anchor acc, position), exactly as the Market will
compute it once it settles. An account whose checkpoint the mirror's frame does not reach (settled
on chain before the mirror's first version, or with an order processed only in the eth_call's
settle) has no anchor and is read again at each new version until it settles on chain (the Market
then logs its AccountPositionProcessed). Not followed: interest and trade fees (the real Market's,
which maths.step_values leaves out, as the stand-in does): the anchor check at each read, the
confirmation and the resync count what they move.

The maintenance check itself is the adapter's (maths.collateral_at to the version a fresh price
would be committed at, maths.maintenance): local for every account; those it finds liquidatable are
read from the Market (settle then read) before anything is planned, and a difference is counted.
Every resync_interval_blocks every account is read and compared with the mirror's own view."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import structlog

from keeper.abi import load
from keeper.chain.client import Chain, Log, block_tag, hexint
from keeper.chain.multicall import Call, CallFailed, decode_aggregate3, encode_aggregate3
from keeper.protocols.perennial_v2 import maths as pm
from keeper.protocols.perennial_v2.routing import KEEPER_FACTORY, KEEPER_ORACLE, MARKET, ORACLE, ORACLE_FACTORY
from keeper.store.types import MirrorRow

if TYPE_CHECKING:
    from keeper.protocols.perennial_v2.adapter import AccountState, MarketState, PerennialV2Adapter

log = structlog.get_logger()
GAS_ORACLE = load("perennial_v2/perennial_gas_oracle")
ORDER_CREATED = MARKET.event("OrderCreated")
ROW_VERSION = 1  # MirrorRow data: JSON, see _account_row / _market_row
ZERO = pm.Values()
MARKET_READS = 13  # calls per market in the first eth_call (market_calls)
ACCOUNT_READS = 6  # positions, locals (on chain), settle, positions, locals, pendings (settled)
ACCOUNTS_PER_CALL = 60
OUTSTANDING_READ = 4
MAX_STEPS = 8  # versions with orders followed in one block (more: the market's accounts are read again)


def apply_order(p: pm.Position, o: list[int]) -> pm.Position:
    """An order's [makerPos, makerNeg, longPos, longNeg, shortPos, shortNeg] applied to a position."""
    return replace(p, maker=p.maker + o[0] - o[1], long=p.long + o[2] - o[3], short=p.short + o[4] - o[5])


def normalized_skew(p: pm.Position, scale: int) -> int:
    """The P controller's input: (long - short) / takerFee.scale, within [-1, 1] (Fixed6)."""
    if scale == 0:
        return 0
    return max(min(pm.tdiv(p.skew * pm.UNIT, scale), pm.UNIT), -pm.UNIT)


def minus(a: pm.Values, b: pm.Values) -> pm.Values:
    return pm.Values(a.maker - b.maker, a.long - b.long, a.short - b.short)


def _values(v: list[int]) -> pm.Values:
    return pm.Values(*v)


def _vlist(v: pm.Values) -> list[int]:
    return [v.maker, v.long, v.short]


@dataclass(frozen=True)
class Anchor:
    """An account's checkpoint on chain: what its collateral is computed from."""
    collateral: int  # locals(account).collateral on chain (no settle)
    version: int  # positions(account).timestamp on chain
    acc: pm.Values  # the mirror's accumulator at ``version``


@dataclass
class MarketMirror:
    block: int = -1  # last block mirrored (-1: every account is read at the next)
    version: int = -1  # latest settled version (the market's position timestamp once settled)
    acc: pm.Values = ZERO  # the mirror's running accumulator at ``version``
    history: dict[int, pm.Values] = field(default_factory=dict)  # version -> accumulator, versions seen
    glob: pm.GlobalView | None = None  # the market settled to ``version``
    # orders placed for versions after ``version`` (OrderCreated logs), summed per version:
    # [makerPos, makerNeg, longPos, longNeg, shortPos, shortNeg]
    orders: dict[int, list[int]] = field(default_factory=dict)
    anchors: dict[str, Anchor | None] = field(default_factory=dict)  # None: read again at each new version
    requests: dict[int, int] = field(default_factory=dict)  # keeper oracle request index -> version


@dataclass
class MirrorStats:
    blocks: int = 0
    reread: int = 0  # account reads (dirty, new, unanchored)
    rechecked: int = 0  # accounts moved to a new version locally
    multistep: int = 0  # blocks where several versions settled, followed locally
    fallbacks: int = 0  # a settlement the mirror could not follow: the market's accounts read again
    resyncs: int = 0
    mismatches: int = 0  # resync (or anchor check) found the chain differing from the mirror
    confirms: int = 0  # accounts the local check found liquidatable, read from chain
    confirm_mismatches: int = 0


@dataclass
class _Read:
    """One account's reads: on chain (no settle), then settled in the eth_call."""
    raw_position: pm.Position
    raw_local: pm.Local
    position: pm.Position
    local: pm.Local
    pending: tuple


def market_calls(ad: PerennialV2Adapter, m: MarketState) -> list[Call]:
    r, f, o, k = m.r, MARKET.fn, ORACLE.fn, KEEPER_ORACLE.fn
    cost = GAS_ORACLE.fn("cost")
    kp, op = KEEPER_FACTORY.fn("parameter"), ORACLE_FACTORY.fn("parameter")
    return [Call(r.oracle, o("global").encode(), o("global").decode),
            Call(r.keeper_factory, kp.encode(), kp.decode),
            Call(r.oracle_factory, op.encode(), op.decode),
            Call(r.market, f("riskParameter").encode(), f("riskParameter").decode),
            Call(r.oracle, o("status").encode(), o("status").decode),
            Call(r.provider, k("global").encode(), k("global").decode),
            Call(r.market, f("locals").encode(ad.liquidator), f("locals").decode),
            Call(r.market, f("settle").encode(r.market), None),
            Call(r.market, f("position").encode(), f("position").decode),
            Call(r.market, f("global").encode(), f("global").decode),
            Call(r.commitment_gas_oracle, cost.encode(m.update_fee), cost.decode),
            Call(r.commitment_gas_oracle, cost.encode(0), cost.decode),
            Call(r.settlement_gas_oracle, cost.encode(0), cost.decode)]


def account_calls(market: str, u: str) -> list[Call]:
    f = MARKET.fn
    return [Call(market, f("positions").encode(u), f("positions").decode),
            Call(market, f("locals").encode(u), f("locals").decode),
            Call(market, f("settle").encode(u), None),
            Call(market, f("positions").encode(u), f("positions").decode),
            Call(market, f("locals").encode(u), f("locals").decode),
            Call(market, f("pendings").encode(u), f("pendings").decode)]


def _eth_call(chain: Chain, calls: list[Call], tag: str) -> tuple[str, list]:
    return ("eth_call", [{"to": chain.multicall_address, "data": "0x" + encode_aggregate3(calls).hex()}, tag])


class PerennialMirror:
    def __init__(self) -> None:
        self.markets: dict[str, MarketMirror] = {}
        self.stats = MirrorStats()
        self.last_resync = -1
        self.changed: set[tuple[str, str]] = set()  # (market, account) rows to store; account "" = market row
        self.restored: dict[str, MirrorRow] = {}
        self.restored_block = -1
        self.read_now: set[tuple[str, str]] = set()  # (market, account) read from chain at this block
        self.compare: dict[str, set[str]] = {}  # market -> accounts a resync compares at this block

    def mm(self, market: str) -> MarketMirror:
        return self.markets.setdefault(market, MarketMirror())

    # ---- local maths ---------------------------------------------------------------------------
    @staticmethod
    def collateral(anchor: Anchor, position: pm.Position, acc: pm.Values) -> int:
        """CheckpointLib: the anchor's collateral plus the values accumulated since, times the position."""
        return anchor.collateral + pm.accumulated(minus(acc, anchor.acc), position)

    # ---- per block -----------------------------------------------------------------------------
    async def refresh(self, ad: PerennialV2Adapter, block: int) -> None:
        assert ad.chain
        chain = ad.chain
        markets = list(ad.markets.values())
        if not markets:
            return
        self._take_restored(ad)
        self.read_now = set()
        tag = block_tag(block)
        per_call = max(1, chain.multicall_chunk // MARKET_READS)
        groups = [markets[i:i + per_call] for i in range(0, len(markets), per_call)]
        at = ORACLE.fn("at")
        steps = {m.market: sorted(self.mm(m.market).orders)[:MAX_STEPS] for m in markets}
        calls = [[c for m in g for c in market_calls(ad, m)
                  + [Call(m.r.oracle, at.encode(v), at.decode) for v in steps[m.market]]] for g in groups]
        reqs: list[tuple[str, list]] = [("eth_getBlockByNumber", [tag, False])]
        reqs += [_eth_call(chain, c, tag) for c in calls]
        mirrored = [self.mm(m.market).block for m in markets if self.mm(m.market).block >= 0]
        since = min(mirrored) if mirrored else -1
        with_logs = 0 <= since < block <= since + chain.log_chunk_blocks
        if with_logs:
            reqs.append(("eth_getLogs", [{"address": [m.market for m in markets], "fromBlock": hex(since + 1),
                                          "toBlock": tag}]))
        answers = await chain.batch(reqs)
        now = hexint(answers[0]["timestamp"])
        named: dict[str, set[str]] = {}
        orders: dict[str, list[tuple[int, list[int]]]] = {}
        if with_logs:
            self._read_logs(ad, answers[-1], named, orders)
        if self.last_resync < 0:
            self.last_resync = block
        resync = block - self.last_resync >= ad.cfg.resync_interval_blocks
        plans: list[tuple[MarketState, set[str], tuple[int, int, int]]] = []
        for g, c, raw in zip(groups, calls, answers[1:1 + len(groups)]):
            res = decode_aggregate3(c, bytes.fromhex(raw[2:]))
            pos = 0
            for m in g:
                n = MARKET_READS + len(steps[m.market])
                part, ats = res[pos:pos + MARKET_READS], res[pos + MARKET_READS:pos + n]
                pos += n
                mm = self.mm(m.market)
                if part[0] is not None and not isinstance(part[0], CallFailed) and part[0][0] != m.r.epoch:
                    await self._route_moved(ad, m, block, now)
                    continue
                idx = self._apply_market(ad, m, part, now, block)
                if 0 <= mm.block < block and not with_logs:
                    mm.block = -1  # too long a gap to read its logs in one request: every account is read
                prices = {v: (a[0][2], a[0][1]) for v, a in zip(steps[m.market], ats) if not isinstance(a, CallFailed)}
                for v, delta in orders.get(m.market, []):
                    mm.orders[v] = [x + d for x, d in zip(mm.orders.get(v, [0] * 6), delta)]
                dirty = self._dirty(m, mm, named.get(m.market, set()), resync, prices)
                plans.append((m, dirty, idx))
        await self._read(ad, block, plans, resync)
        if resync:
            self.last_resync = block
            self.stats.resyncs += 1
        self.stats.blocks += 1

    def _read_logs(self, ad: PerennialV2Adapter, raws: list[dict], named: dict[str, set[str]],
                   orders: dict[str, list[tuple[int, list[int]]]]) -> None:
        by_lower = {m.lower(): m for m in ad.markets}
        for raw in raws:
            lg = Log.from_rpc(raw)
            market = by_lower.get(lg.address.lower())
            if market is None:
                continue
            known = {u[2:].lower(): u for u in ad.markets[market].accounts}
            for t in lg.topics[1:]:
                if t.startswith("0x000000000000000000000000") and (u := known.get(t[26:])):
                    named.setdefault(market, set()).add(u)
            if lg.topics and lg.topics[0] == ORDER_CREATED.topic:
                o = ORDER_CREATED.decode(lg.topics, lg.data)["order"]
                orders.setdefault(market, []).append((o[0], list(o[3:9])))

    async def _route_moved(self, ad: PerennialV2Adapter, m: MarketState, block: int, now: int) -> None:
        """The router's epoch moved: the market is read as before (route, then every account) and its
        mirror starts again at the next block."""
        await ad._refresh_market(m, block, now)
        await ad._refresh_accounts(m, block)
        self.markets[m.market] = MarketMirror()

    def _apply_market(self, ad: PerennialV2Adapter, m: MarketState, part: list[Any], now: int,
                      block: int) -> tuple[int, int, int]:
        if any(isinstance(x, CallFailed) for i, x in enumerate(part) if i != 7):
            raise RuntimeError(f"{ad.name}: market {m.market} reads failed at block {block}")
        (_e, kp, op, risk, (latest, current), (_lv, current_index, latest_index), keeper_local, _s, position, glob,
         sync, sync0, async_) = part
        _, m.granularity, _, _, m.valid_from, m.valid_to = kp
        m.max_settlement_fee = op[1]
        m.now = now
        m.risk = pm.Risk.from_tuple(risk)
        m.latest = pm.OracleView(latest[0], latest[1], latest[2], current)
        m.claimable = keeper_local[3]
        m.sync_cost, m.sync_cost0, m.async_cost = sync, sync0, async_
        m.glob = pm.GlobalView(pm.Position(*position), glob[5], glob[7][0], glob[7][1])
        return current, current_index, latest_index

    def _dirty(self, m: MarketState, mm: MarketMirror, named: set[str], resync: bool,
               prices: dict[int, tuple[bool, int]]) -> set[str]:
        """The accounts read at this block; the market's accumulator moved to the new latest version."""
        assert m.glob and m.risk
        new = m.glob.position.timestamp
        everyone = set(m.accounts)
        if mm.block < 0 or mm.glob is None:
            mm.acc, mm.history = ZERO, {new: ZERO}
            mm.orders = {v: o for v, o in mm.orders.items() if v > new}
            mm.anchors.clear()
            dirty = everyone
        elif new != mm.version:
            if self._accumulate(m, mm, new, prices):
                dirty = named | {u for u, st in m.accounts.items() if st.pending_orders or st.local is None
                                 or (st.local.current_id != st.local.latest_id) or mm.anchors.get(u) is None}
            else:  # the settlement could not be followed: the frame starts again
                self.stats.fallbacks += 1
                mm.acc, mm.history = ZERO, {new: ZERO}
                mm.anchors.clear()
                dirty = everyone
            mm.orders = {v: o for v, o in mm.orders.items() if v > new}
        else:
            dirty = named
        dirty |= {u for u in everyone if u not in mm.anchors}
        self.compare[m.market] = everyone - dirty if resync else set()  # what the mirror alone brought here
        if resync:
            dirty = everyone
        # only the versions an anchor (or the latest) needs are kept
        keep = {a.version for a in mm.anchors.values() if a is not None} | {new}
        mm.history = {v: a for v, a in mm.history.items() if v in keep}
        mm.version = new
        mm.glob = m.glob
        return dirty

    def _accumulate(self, m: MarketState, mm: MarketMirror, new: int, prices: dict[int, tuple[bool, int]]) -> bool:
        """The market's settlement from the mirrored latest version to ``new`` as VersionLib makes it:
        for each version with orders in between (in order), the step's values from the global state
        before it (price PnL, funding), then its orders applied if the version is valid; then the sync
        to ``new``. Accepted only when the global state it arrives at is the one the Market shows
        (position, price, funding rate and skew): False otherwise (versions with orders the mirror did
        not see, more than it reads at once, an order layout it does not follow)."""
        assert m.glob and m.risk and mm.glob and m.latest
        g, acc, seen = mm.glob, mm.acc, {}
        if m.latest.latest_timestamp == new:  # the oracle's latest version, from its status
            prices = {**prices, new: (m.latest.latest_valid, m.latest.latest_price)}
        versions = sorted(v for v in mm.orders if mm.version < v <= new)
        for v in versions:
            if v not in prices:
                return False
            valid, price = prices[v]
            to_price = price if valid else g.price
            acc = acc.plus(pm.step_values(g, m.risk, v, to_price))
            rate = pm.funding(g, m.risk.p_controller, v)[1]
            position = apply_order(g.position, mm.orders[v]) if valid else g.position
            position = replace(position, timestamp=v)
            g = pm.GlobalView(position, to_price, rate, normalized_skew(position, m.risk.taker_scale))
            seen[v] = acc
        if g.position.timestamp < new:
            acc = acc.plus(pm.step_values(g, m.risk, new, m.glob.price))
            rate = pm.funding(g, m.risk.p_controller, new)[1]
            g = pm.GlobalView(replace(g.position, timestamp=new), m.glob.price, rate, g.skew)
        if g != m.glob:
            return False
        if len(versions) > 1 or (versions and versions[-1] < new):
            self.stats.multistep += 1
        mm.acc = acc
        mm.history.update(seen)
        mm.history[new] = acc
        return True

    async def _read(self, ad: PerennialV2Adapter, block: int,
                    plans: list[tuple[MarketState, set[str], tuple[int, int, int]]], resync: bool) -> None:
        """Second round trip: the keeper oracle's versions and the re-read accounts of every market;
        then every other account moved to the new version locally."""
        assert ad.chain
        chain = ad.chain
        tag = block_tag(block)
        f, o, k = MARKET.fn, ORACLE.fn, KEEPER_ORACLE.fn
        reqs: list[tuple[str, list]] = []
        slots: list[tuple[str, MarketState, list[Call], Any]] = []
        for m, dirty, (current, current_index, latest_index) in plans:
            mm = self.mm(m.market)
            r = m.r
            idx = list(range(latest_index + 1, min(current_index, latest_index + OUTSTANDING_READ) + 1))
            unknown = [i for i in idx if i not in mm.requests]
            mm.requests = {i: v for i, v in mm.requests.items() if i > latest_index}
            versions = sorted({ow.version for ow in m.owed.values()} | {mm.requests[i] for i in idx if i in mm.requests}
                              | {current})
            owing = self._owing(m)
            calls = [Call(r.market, f("settle").encode(u), None) for u in owing]
            calls.append(Call(r.market, f("locals").encode(ad.liquidator), f("locals").decode))
            calls += [Call(r.provider, k("requests").encode(i), k("requests").decode) for i in unknown]
            calls += [Call(r.oracle, o("at").encode(v), o("at").decode) for v in versions]
            calls += [Call(r.provider, k("localCallbacks").encode(v), k("localCallbacks").decode) for v in versions]
            calls += [Call(r.provider, k("responses").encode(v), k("responses").decode) for v in versions]
            reqs.append(_eth_call(chain, calls, tag))
            slots.append(("market", m, calls, (owing, unknown, versions, idx)))
            accounts = sorted(dirty)
            for i in range(0, len(accounts), ACCOUNTS_PER_CALL):
                group = accounts[i:i + ACCOUNTS_PER_CALL]
                calls = [c for u in group for c in account_calls(r.market, u)]
                reqs.append(_eth_call(chain, calls, tag))
                slots.append(("accounts", m, calls, group))
        answers = await chain.batch(reqs) if reqs else []
        reads: dict[str, dict[str, _Read]] = {}
        for (kind, m, calls, extra), raw in zip(slots, answers):
            res = decode_aggregate3(calls, bytes.fromhex(raw[2:]))
            if kind == "market":
                owing, unknown, versions, idx = extra
                await self._apply_versions(ad, m, res, owing, unknown, versions, idx, block)
                continue
            for j, u in enumerate(extra):
                part = res[ACCOUNT_READS * j:ACCOUNT_READS * (j + 1)]
                if any(isinstance(x, CallFailed) for i, x in enumerate(part) if i != 2):
                    log.warning("perennial.account_read_failed", protocol=ad.name, account=u)
                    continue
                rp, rl, _, p, loc, pend = part
                reads.setdefault(m.market, {})[u] = _Read(pm.Position(*rp), pm.Local(*rl), pm.Position(*p),
                                                          pm.Local(*loc), tuple(pend))
        for m, dirty, _ in plans:
            mm = self.mm(m.market)
            got = reads.get(m.market, {})
            for u, st in m.accounts.items():
                if u in got:
                    if u in self.compare.get(m.market, ()):
                        self._compare(ad, m, mm, u, st, got[u], block)
                    self._adopt(ad, m, mm, u, st, got[u], block)
                elif u not in dirty:
                    self._advance(m, mm, u, st, block)
            mm.block = block
            self.changed.add((m.market, ""))

    def _owing(self, m: MarketState) -> list[str]:
        from keeper.protocols.perennial_v2.adapter import AccountState
        return sorted({ow.account for ow in m.owed.values() if ow.committed
                       and m.accounts.get(ow.account, AccountState()).settled_at < ow.version})

    async def _apply_versions(self, ad: PerennialV2Adapter, m: MarketState, res: list[Any], owing: list[str],
                              unknown: list[int], versions: list[int], idx: list[int], block: int) -> None:
        """The keeper oracle's outstanding requests and the versions' receipts, callbacks and responses
        (as the adapter's _refresh_market reads them); the keeper's claimable once the accounts owing it
        are settled."""
        assert ad.chain
        mm = self.mm(m.market)
        n_own = len(owing)
        keeper_local = res[n_own]
        if any(isinstance(x, CallFailed) for x in res[n_own:]):
            raise RuntimeError(f"{ad.name}: market {m.market} oracle reads failed at block {block}")
        m.claimable_settled = keeper_local[3]
        pos = n_own + 1
        for i, v in zip(unknown, res[pos:pos + len(unknown)]):
            mm.requests[i] = v
        pos += len(unknown)
        n = len(versions)
        at, cbs, rsp = res[pos:pos + n], res[pos + n:pos + 2 * n], res[pos + 2 * n:pos + 3 * n]
        m.outstanding = [mm.requests[i] for i in idx]
        missing = sorted(set(m.outstanding) - set(versions))
        if missing:  # requested versions first seen now (blocks skipped): read in a third call
            r, o, k = m.r, ORACLE.fn, KEEPER_ORACLE.fn
            extra = [Call(r.oracle, o("at").encode(v), o("at").decode) for v in missing]
            extra += [Call(r.provider, k("localCallbacks").encode(v), k("localCallbacks").decode) for v in missing]
            extra += [Call(r.provider, k("responses").encode(v), k("responses").decode) for v in missing]
            more = await ad.chain.multicall_strict(extra, block)
            q = len(missing)
            versions = versions + missing
            at, cbs, rsp = at + more[:q], cbs + more[q:2 * q], rsp + more[2 * q:]
        m.receipts = {v: (a[0][2], a[1][0]) for v, a in zip(versions, at)}
        m.callbacks = {v: len(c) for v, c in zip(versions, cbs)}
        m.responses = {v: (x[1], x[2]) for v, x in zip(versions, rsp)}
        ad._track_owed(m)

    def _adopt(self, ad: PerennialV2Adapter, m: MarketState, mm: MarketMirror, u: str, st: AccountState,
               rd: _Read, block: int) -> None:
        """An account read from chain: the adapter's view, and its anchor when the mirror's frame reaches
        its on-chain checkpoint and the settle processed no order."""
        st.settled_at = rd.raw_position.timestamp
        st.position, st.local, st.pending = rd.position, rd.local, rd.pending
        st.block = block
        self.stats.reread += 1
        self.changed.add((m.market, u))
        self.read_now.add((m.market, u))
        acc = mm.history.get(rd.raw_position.timestamp)
        same = (rd.raw_local.latest_id == rd.local.latest_id
                and replace(rd.raw_position, timestamp=0) == replace(rd.position, timestamp=0))
        anchor = Anchor(rd.raw_local.collateral, rd.raw_position.timestamp, acc) if same and acc is not None else None
        if anchor is not None and self.collateral(anchor, rd.position, mm.acc) != rd.local.collateral:
            self.stats.mismatches += 1
            log.warning("perennial.mirror_mismatch", protocol=ad.name, market=m.market, account=u, block=block,
                        when="anchor", local=self.collateral(anchor, rd.position, mm.acc), chain=rd.local.collateral)
            anchor = None
        mm.anchors[u] = anchor

    def _advance(self, m: MarketState, mm: MarketMirror, u: str, st: AccountState, block: int) -> None:
        """A quiet account moved to the market's latest version with the mirror's accumulator."""
        if st.position is None or st.local is None:
            return
        st.block = block  # the settled view changes only with the latest version (or a log naming it)
        anchor = mm.anchors.get(u)
        if anchor is None or st.position.timestamp == mm.version:
            return
        st.local = replace(st.local, collateral=self.collateral(anchor, st.position, mm.acc))
        st.position = replace(st.position, timestamp=mm.version)
        self.stats.rechecked += 1

    def _compare(self, ad: PerennialV2Adapter, m: MarketState, mm: MarketMirror, u: str, st: AccountState,
                 rd: _Read, block: int) -> None:
        """Resync: the mirror's view of an account it did not have to read, against the Market's."""
        anchor = mm.anchors.get(u)
        if anchor is None or st.position is None or st.local is None or st.pending_orders:
            return
        mine = (replace(st.position, timestamp=mm.version), self.collateral(anchor, st.position, mm.acc))
        chain = (rd.position, rd.local.collateral)
        if mine != chain:
            self.stats.mismatches += 1
            log.warning("perennial.mirror_mismatch", protocol=ad.name, market=m.market, account=u, block=block,
                        when="resync", local=str(mine), chain=str(chain))

    # ---- confirmation of the local verdicts ------------------------------------------------------------
    async def confirm(self, ad: PerennialV2Adapter, block: int) -> None:
        """Accounts the local check finds liquidatable are settled and read from the Market (one
        eth_call per group, those accounts only) before anything is planned; a difference is counted."""
        assert ad.chain
        todo: list[tuple[MarketState, list[str]]] = []
        for m in ad.markets.values():
            if m.latest is None or m.risk is None or m.glob is None or m.route is None:
                continue
            _, version, price, _ = ad._commit_plan(m)
            found = [u for u, st in m.accounts.items()
                     if st.block == block and st.position is not None and st.position.magnitude
                     and not st.pending_orders and (m.market, u) not in self.read_now
                     and ad._row(m, u, st, version, price)[0].liquidatable]
            if found:
                todo.append((m, found))
        if not todo:
            return
        tag = block_tag(block)
        reqs, slots = [], []
        for m, found in todo:
            for i in range(0, len(found), ACCOUNTS_PER_CALL):
                group = found[i:i + ACCOUNTS_PER_CALL]
                calls = [c for u in group for c in account_calls(m.market, u)]
                reqs.append(_eth_call(ad.chain, calls, tag))
                slots.append((m, calls, group))
        answers = await ad.chain.batch(reqs)
        for (m, calls, group), raw in zip(slots, answers):
            res = decode_aggregate3(calls, bytes.fromhex(raw[2:]))
            mm = self.mm(m.market)
            for j, u in enumerate(group):
                part = res[ACCOUNT_READS * j:ACCOUNT_READS * (j + 1)]
                if any(isinstance(x, CallFailed) for i, x in enumerate(part) if i != 2):
                    continue
                rp, rl, _, p, loc, pend = part
                rd = _Read(pm.Position(*rp), pm.Local(*rl), pm.Position(*p), pm.Local(*loc), tuple(pend))
                st = m.accounts[u]
                self.stats.confirms += 1
                if (st.position, st.local and st.local.collateral) != (rd.position, rd.local.collateral):
                    self.stats.confirm_mismatches += 1
                    log.warning("perennial.mirror_mismatch", protocol=ad.name, market=m.market, account=u,
                                block=block, when="confirm",
                                local=str((st.position, st.local and st.local.collateral)),
                                chain=str((rd.position, rd.local.collateral)))
                self._adopt(ad, m, mm, u, st, rd, block)

    # ---- durable state ---------------------------------------------------------------------------
    def rows(self, ad: PerennialV2Adapter) -> list[MirrorRow]:
        out = []
        for market, u in sorted(self.changed):
            m = ad.markets.get(market)
            mm = self.markets.get(market)
            if m is None or mm is None or mm.block < 0:
                continue
            if not u:
                out.append(MirrorRow(market, ROW_VERSION, mm.block, json.dumps(self._market_row(mm)).encode()))
                continue
            st = m.accounts.get(u)
            if st is None or st.position is None or st.local is None:
                continue
            a = mm.anchors.get(u)
            data = [list(_fields(st.position)), list(_fields(st.local)), list(st.pending), st.settled_at,
                    None if a is None else [a.collateral, a.version, _vlist(a.acc)]]
            out.append(MirrorRow(f"{market}/{u}", ROW_VERSION, mm.block, json.dumps(data).encode()))
        self.changed.clear()
        return out

    @staticmethod
    def _market_row(mm: MarketMirror) -> list:
        g = mm.glob
        assert g is not None
        return [mm.version, _vlist(mm.acc), [[v, _vlist(a)] for v, a in mm.history.items()],
                [list(_fields(g.position)), g.price, g.rate, g.skew], [[v, o] for v, o in sorted(mm.orders.items())],
                [[i, v] for i, v in mm.requests.items()]]

    def restore(self, rows: dict[str, MirrorRow], block: int) -> None:
        self.restored = {k: r for k, r in rows.items() if r.version == ROW_VERSION}
        self.restored_block = block

    def _take_restored(self, ad: PerennialV2Adapter) -> None:
        """Rows of an earlier run, for the markets now known (once; the rest is read from chain)."""
        if not self.restored:
            return
        from keeper.protocols.perennial_v2.adapter import AccountState
        rows, self.restored = self.restored, {}
        block = self.restored_block
        for key, r in rows.items():
            if "/" in key or key not in ad.markets:
                continue
            version, acc, hist, (pos, price, rate, skew), orders, reqs = json.loads(r.data)
            self.markets[key] = MarketMirror(
                block=block, version=version, acc=_values(acc), history={v: _values(a) for v, a in hist},
                glob=pm.GlobalView(pm.Position(*pos), price, rate, skew), orders={v: o for v, o in orders},
                requests={i: v for i, v in reqs})
        for key, r in rows.items():
            if "/" not in key:
                continue
            market, u = key.split("/", 1)
            m, mm = ad.markets.get(market), self.markets.get(market)
            if m is None or mm is None:
                continue
            pos, loc, pend, settled_at, a = json.loads(r.data)
            if a is None:
                continue  # not anchored: read from chain
            st = m.accounts.setdefault(u, AccountState())
            anchor = Anchor(a[0], a[1], _values(a[2]))
            position = pm.Position(*pos)
            # stored when last read or changed: moved to the market row's version with the anchor
            st.position = replace(position, timestamp=mm.version)
            st.local = replace(pm.Local(*loc), collateral=self.collateral(anchor, position, mm.acc))
            st.pending, st.settled_at, st.block = tuple(pend), settled_at, block
            mm.anchors[u] = anchor


def _fields(x: Any) -> tuple:
    return tuple(getattr(x, f) for f in x.__dataclass_fields__)

