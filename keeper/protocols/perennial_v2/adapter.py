"""Perennial V2: the markets configured and, given market_factory, every market the MarketFactory
created (InstanceRegistered / MarketCreated logs); accounts from each Market's OrderCreated logs.
Each market's oracle is followed as deployed (routing.py): Market.oracle() is an Oracle router whose
current provider is a KeeperOracle made by a PythFactory; the route is read again whenever the
router's current epoch moves.

Accounts are mirrored as the Market computes them: settle(account) then its positions and locals
in one Multicall3 eth_call (PnL, funding, interest and fees up to the latest committed version,
exactly), then the step to the version the keeper would commit with a fresh pull-oracle (Pyth)
price projected with Perennial's own rules (maths.step_values: price PnL and funding); the
maintenance check is made there, as InvariantLib makes it once that version is the latest. With
``incremental`` (the default) the accounts are kept by the mirror (mirror.py): read again only when a
Market log names them or a new version settles their pending order, moved to new versions locally,
the liquidatable ones confirmed on chain before planning.

A liquidation plan is the commit(s) (a timed-out requested version committed invalid first, then the
fresh price) paying Pyth's fee, then update(account, 0, 0, 0, 0, true) per account (a protected full
close), all from the keeper's own address (the Market records msg.sender as the liquidator; the
oracle pays the committer). The reward is liquidationFee = the closes' version's settlementFee x
riskParameter.liquidationFee per account, settlementFee = syncFee + asyncFee x callbacks as the
KeeperOracle will price that version (its gas oracles' cost, the plan's accounts as callbacks); it is
booked as a deferred credit, tracked per (account, version), and collected by a claim plan once worth
claim_min_gas_multiple x its gas: the commit of the requested version within its timeout (the sync
fee is the keeper's), KeeperFactory.settle of its callbacks (the async fees too), claimFee(keeper).
A version that timed out, or was committed invalid, voids the liquidation: reported as lost."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import structlog
from eth_utils import to_checksum_address

from keeper.abi import load
from keeper.chain.client import Chain, hexint
from keeper.chain.multicall import Call, CallFailed, encode_aggregate3
from keeper.chain.sender import TxRequest
from keeper.errors import StartupError
from keeper.oracles.chainlink import ChainlinkFeed
from keeper.oracles.pull import FeedPrice, PriceUpdate
from keeper.protocols.base import (
    USD,
    AccountView,
    Adapter,
    Assessment,
    Budget,
    Covered,
    Details,
    ObservedLiquidation,
    Plan,
    PlanKind,
    Planned,
    PythFeedRef,
    Services,
    Skip,
    SkipCode,
    TokenPrice,
    batch_kind,
)
from keeper.protocols.perennial_v2 import maths as pm
from keeper.protocols.perennial_v2.config import PerennialV2Config
from keeper.protocols.perennial_v2.mirror import PerennialMirror
from keeper.protocols.perennial_v2.routing import (
    KEEPER_FACTORY,
    KEEPER_ORACLE,
    MARKET,
    MARKET_FACTORY,
    ORACLE,
    ORACLE_FACTORY,
    Route,
    RouteError,
    resolve,
)
from keeper.store.types import MirrorRow

log = structlog.get_logger()
GAS_ORACLE = load("perennial_v2/perennial_gas_oracle")
ORDER_CREATED = MARKET.event("OrderCreated")
# A market's creation: root Factory's InstanceRegistered (every Perennial V2 release) and
# IMarketFactory's MarketCreated (whose definition tuple changed between releases): either names
# the market in topic 1.
CREATION_TOPICS = [MARKET_FACTORY.event("InstanceRegistered").topic, MARKET_FACTORY.event("MarketCreated").topic]
PROTECTION = 9  # Order.protection, index in the tuple
TOKEN18 = 10**12  # UFixed6 DSU -> the 18-decimal token
# Estimates before simulation (ranking, the cheap pre-check); the profit gate uses the simulated gas.
# Measured on the stand-ins on Anvil: a fresh commit (Pyth verification, the market's settle(0),
# the fee claim) ~445k, a requested one (its gas oracles and the sync fee payout too) ~670k, a
# protected close ~610k (~770k for the first, which settles the market), KeeperFactory.settle ~160k a
# callback, claimFee ~55k; Perennial's own contracts were measured at about twice the previous
# estimates (150k, 550k, 160k).
COMMIT_GAS = 450_000
COMMIT_REQUESTED_GAS = 680_000
CLOSE_GAS = 650_000
CLOSE_FIRST_EXTRA_GAS = 150_000
SETTLE_GAS = 40_000
SETTLE_CALLBACK_GAS = 160_000
CLAIM_GAS = 60_000
ACCOUNTS_PER_CALL = 60  # accounts per Multicall3 eth_call (5 calls each, within one chunk)
OUTSTANDING_READ = 4  # requested versions read ahead (a timed-out one is committed invalid first)
STALE = "oracle stale"
HEALTHY = Skip(SkipCode.NOT_LIQUIDATABLE, "healthy")


@dataclass(frozen=True)
class LiquidateDetails(Details):
    market: str
    collateral: int  # the lead account's, at the price checked (UFixed6 DSU)
    collateral_settled: int  # the lead account's at the latest settled version
    maintenance: int
    price: int
    version: int  # the version whose price the check used
    reward_each: int  # UFixed6 DSU per account, credited once the closes' version is committed and settled
    close_version: int
    settlement_fee: int
    sync_fee: int
    async_fee: int
    callbacks: int
    commit_income: int  # the sync fees of requested versions the plan commits (UFixed6 DSU)
    commit_versions: tuple[int, ...]
    oracle_fee_wei: int


@dataclass(frozen=True)
class ClaimDetails(Details):
    market: str
    claimable: int
    settled_now: tuple[str, ...]
    settled_versions: tuple[int, ...]
    commit_version: int | None
    keeper_fees: int
    total: int
LOST = "reward lost"


@dataclass
class AccountState:
    position: pm.Position | None = None  # settled to the latest version (eth_call settle)
    local: pm.Local | None = None
    pending: tuple = ()  # pendings(account) once settled: orders at versions not committed yet
    settled_at: int = 0  # positions(account).timestamp on chain, before the simulated settle
    block: int = -1

    @property
    def pending_orders(self) -> int:
        return self.pending[1] if self.pending else 0

    @property
    def pending_protected(self) -> bool:
        return bool(self.pending and self.pending[PROTECTION])


@dataclass
class Owed:
    """A liquidation this keeper sent and whose reward is not credited yet."""
    account: str
    version: int  # the version the protected order was placed for
    amount: int = 0  # UFixed6 DSU: from the version's receipt once committed (else predicted)
    committed: bool = False
    lost: str | None = None  # why the reward will never come


@dataclass
class MarketState:
    market: str
    route: Route | None = None
    granularity: int = 1
    valid_from: int = 0
    valid_to: int = 0
    max_settlement_fee: int = 0
    risk: pm.Risk | None = None
    latest: pm.OracleView | None = None
    glob: pm.GlobalView | None = None
    now: int = 0  # block timestamp of the refresh
    outstanding: list[int] = field(default_factory=list)  # requested versions not committed, oldest first
    callbacks: dict[int, int] = field(default_factory=dict)  # version -> settlement callbacks registered
    receipts: dict[int, tuple[bool, int]] = field(default_factory=dict)  # version -> (valid, settlementFee)
    responses: dict[int, tuple[int, int]] = field(default_factory=dict)  # version -> (syncFee, asyncFee)
    sync_cost: int = 0  # commitment gas oracle cost(Pyth fee), 18 decimals
    sync_cost0: int = 0  # cost(0): an invalid commit
    async_cost: int = 0  # settlement gas oracle cost(0)
    claimable: int = 0  # locals(keeper).claimable, UFixed6
    claimable_settled: int = 0  # the same once the accounts owing us at committed versions are settled
    accounts: dict[str, AccountState] = field(default_factory=dict)
    owed: dict[tuple[str, int], Owed] = field(default_factory=dict)
    lost: list[Owed] = field(default_factory=list)
    fresh: FeedPrice | None = None
    update: PriceUpdate | None = None
    update_fee: int = 0
    fresh_error: str | None = None

    @property
    def r(self) -> Route:
        assert self.route is not None
        return self.route


class PerennialV2Adapter(Adapter[PerennialV2Config]):
    cfg: PerennialV2Config

    def __init__(self, cfg: PerennialV2Config, services: Services):
        self.cfg = cfg
        self.name = cfg.name
        self.liquidator = services.liquidator
        self.pull_oracle = services.pull_oracle
        self.markets = {m: MarketState(m) for m in cfg.markets}
        self.factory = cfg.market_factory
        self.skipped_markets: set[str] = set()  # created by the factory but not Pyth keeper-oracle markets
        self.dsu_feed = ChainlinkFeed(cfg.dsu_usd_feed) if cfg.dsu_usd_feed else None
        self.dsu_price = USD  # DSU valued at 1 USD unless dsu_usd_feed
        self.chain: Chain | None = None
        self.mirror = PerennialMirror() if cfg.incremental else None

    def contracts(self) -> dict[str, str]:
        out = {"MarketFactory": self.factory} if self.factory else {}
        for i, m in enumerate(self.markets.values()):
            out[f"Market[{i}]"] = m.market
            if m.route:
                out[f"Market[{i}].oracle"] = m.route.oracle
                out[f"Market[{i}].keeper_oracle"] = m.route.provider
                out[f"Market[{i}].keeper_factory"] = m.route.keeper_factory
                out[f"Market[{i}].pyth"] = m.route.pyth
        return out

    async def pyth_feeds(self) -> set[PythFeedRef]:
        """Each market's Pyth feed: its keeper oracle verifies the signed update a commit hands it
        (parsePriceFeedUpdates), not a price Pyth stores."""
        return {PythFeedRef(None, m.route.pyth, m.route.feed_id, False) for m in self.markets.values() if m.route}

    def pending_rewards(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.markets.values():
            if m.claimable and m.route:
                out[m.route.dsu] = out.get(m.route.dsu, 0) + m.claimable * TOKEN18
        return out

    # ---- start-up ---------------------------------------------------------------------------
    async def start(self, chain: Chain) -> None:
        self.chain = chain
        if self.pull_oracle is None:
            raise StartupError(f"{self.name}: Perennial needs signed prices: add a [pull_oracle] table")
        if self.factory:
            await self._check_factory(chain)
        for m in self.markets.values():
            try:
                await self._resolve(m)
            except RouteError as e:
                raise StartupError(f"{self.name}: {e}") from None

    async def _check_factory(self, chain: Chain) -> None:
        """The factory has code and made every configured market (root Factory.instances)."""
        assert self.factory
        if not await chain.get_code(self.factory):
            raise StartupError(f"{self.name}: no contract at market_factory {self.factory}")
        if not self.markets:
            return
        fn = MARKET_FACTORY.fn("instances")
        try:
            made = await chain.multicall_strict([Call(self.factory, fn.encode(m), fn.decode) for m in self.markets])
        except Exception as e:
            raise StartupError(f"{self.name}: market_factory {self.factory} does not answer instances(address): "
                               f"{e}") from None
        foreign = [m for m, ok in zip(self.markets, made) if not ok]
        if foreign:
            raise StartupError(f"{self.name}: markets {foreign} were not created by market_factory {self.factory} "
                               "(instances() is false)")

    async def _resolve(self, m: MarketState) -> None:
        """The market's oracle route (RouteError when it is not a Perennial market priced through an
        Oracle router by a Pyth keeper oracle) and the keeper factory's parameters."""
        assert self.chain
        route = await resolve(self.chain, m.market)
        if self.factory and route.market_factory != self.factory:
            raise RouteError(f"market {m.market} was created by {route.market_factory}, not market_factory "
                             f"{self.factory}")
        old, m.route = m.route, route
        await self._read_parameters(m)
        if old is not None and old.provider != route.provider:
            log.info("perennial.oracle_provider_moved", protocol=self.name, market=m.market, epoch=route.epoch,
                     provider=route.provider, keeper_factory=route.keeper_factory, previous=old.provider)

    async def _read_parameters(self, m: MarketState, block: int | str = "latest") -> None:
        assert self.chain
        r = m.r
        kp, op = await self.chain.multicall_strict([
            Call(r.keeper_factory, KEEPER_FACTORY.fn("parameter").encode(), KEEPER_FACTORY.fn("parameter").decode),
            Call(r.oracle_factory, ORACLE_FACTORY.fn("parameter").encode(), ORACLE_FACTORY.fn("parameter").decode)],
            block)
        # KeeperOracleParameter: (latestGranularity, currentGranularity, effectiveAfter, oracleFee,
        # validFrom, validTo); OracleParameter: (maxGranularity, maxSettlementFee, maxOracleFee)
        _, m.granularity, _, _, m.valid_from, m.valid_to = kp
        m.max_settlement_fee = op[1]
        if m.granularity == 0:
            raise RouteError(f"keeper factory {r.keeper_factory} has granularity 0")

    # ---- discovery ---------------------------------------------------------------------------
    async def discover(self, from_block: int, to_block: int) -> int:
        assert self.chain
        if self.factory:
            await self._discover_markets(from_block, to_block)
        if not self.markets:
            return 0  # an empty address list would match every contract's logs
        logs = await self.chain.get_logs(list(self.markets), [[ORDER_CREATED.topic]], from_block, to_block)
        new = 0
        for lg in logs:
            m = self.markets.get(lg.address)
            if m is None or len(lg.topics) < 2:
                continue
            account = to_checksum_address("0x" + lg.topics[1][-40:])
            if account not in m.accounts:
                m.accounts[account] = AccountState()
                new += 1
            ev = ORDER_CREATED.decode(lg.topics, lg.data)
            if ev["liquidator"] == self.liquidator and ev["order"][PROTECTION]:
                key = (account, ev["order"][0])
                if key not in m.owed:
                    m.owed[key] = Owed(account, ev["order"][0])
                    new += 1  # a reward owed is found too (and a key for the durable index)
        return new

    async def _discover_markets(self, from_block: int, to_block: int) -> None:
        """Markets the factory created in the range join the watched ones (resolved as configured
        markets are). Their OrderCreated logs are read in the same call, over the same range, which
        starts no later than their creation."""
        assert self.chain and self.factory
        logs = await self.chain.get_logs(self.factory, [CREATION_TOPICS], from_block, to_block)
        for lg in logs:
            if lg.address != self.factory or len(lg.topics) < 2:
                continue
            market = to_checksum_address("0x" + lg.topics[1][-40:])
            if market in self.markets or market in self.skipped_markets:
                continue
            m = MarketState(market)
            try:
                await self._resolve(m)
            except RouteError as e:
                # e.g. a market on another oracle type (Chainlink/Stork keeper oracles): not watched.
                self.skipped_markets.add(market)
                log.warning("perennial.market_skipped", protocol=self.name, market=market, why=str(e))
                continue
            self.markets[market] = m
            log.info("perennial.market_found", protocol=self.name, market=market, oracle=m.r.oracle,
                     keeper_oracle=m.r.provider, feed=m.r.feed_id, block=lg.block_number)

    # ---- mirror ------------------------------------------------------------------------------
    def account_keys(self) -> set[str]:
        """What discovery found, as store keys: each market ("market/<m>"), each account
        ("account/<m>/<a>") and each protected order of ours ("owed/<m>/<a>/<version>": the
        reward's version, as OrderCreated told it)."""
        keys = {f"market/{m.market}" for m in self.markets.values()}
        for m in self.markets.values():
            keys |= {f"account/{m.market}/{a}" for a in m.accounts}
            keys |= {f"owed/{m.market}/{a}/{v}" for a, v in m.owed}
        return keys

    def restore_accounts(self, keys: set[str]) -> bool:
        """Refused (discovery reads the logs again) when a key names a market not resolved at start,
        e.g. one the factory created (its route is resolved only by discovery), or a market is
        configured that was not then."""
        parsed = [k.split("/") for k in keys]
        if any(len(p) < 2 or p[1] not in self.markets for p in parsed):
            return False
        if set(self.markets) - {p[1] for p in parsed if p[0] == "market"}:
            return False  # a market configured since: its older logs were never read
        for p in parsed:
            m = self.markets[p[1]]
            if p[0] == "account" and len(p) == 3:
                m.accounts.setdefault(p[2], AccountState())
            elif p[0] == "owed" and len(p) == 4:
                m.owed.setdefault((p[2], int(p[3])), Owed(p[2], int(p[3])))
            elif p[0] != "market":
                return False
        return True

    def mirror_rows(self) -> list[MirrorRow]:
        return self.mirror.rows(self) if self.mirror is not None else []

    def restore_mirror(self, rows: dict[str, MirrorRow], block: int) -> None:
        if self.mirror is not None:
            self.mirror.restore(rows, block)

    def forget_state(self) -> None:
        if self.mirror is not None:
            self.mirror = PerennialMirror()  # every account is read again at the next block

    async def refresh(self, block: int, *, all_details: bool = False) -> None:
        assert self.chain
        if self.dsu_feed is not None:
            self.dsu_price = (await self.dsu_feed.read(self.chain, block)).price_8
        if self.mirror is not None and not all_details:
            await self._fetch_prices(block)  # first: the commitment gas oracle's cost is of Pyth's fee
            await self.mirror.refresh(self, block)
            await self.mirror.confirm(self, block)
            return
        if self.mirror is not None:
            self.mirror.markets.clear()  # read in full below: the mirror starts again at the next block
        now = hexint((await self.chain.get_block(block))["timestamp"])
        for m in self.markets.values():
            await self._refresh_market(m, block, now)
        await self._fetch_prices(block)
        for m in self.markets.values():
            await self._refresh_accounts(m, block)

    async def _refresh_market(self, m: MarketState, block: int, now: int) -> None:
        """The router's epoch (the route read again if it moved), risk, latest version, the keeper
        oracle's outstanding requests, the receipts of the versions owed to us."""
        assert self.chain
        (epoch, _),  = await self.chain.multicall_strict([Call(m.r.oracle, ORACLE.fn("global").encode(),
                                                               ORACLE.fn("global").decode)], block)
        if epoch != m.r.epoch:
            await self._resolve(m)
        else:
            await self._read_parameters(m, block)  # the publish window and fee bound may change
        r, f, o, k = m.r, MARKET.fn, ORACLE.fn, KEEPER_ORACLE.fn
        calls = [Call(r.market, f("riskParameter").encode(), f("riskParameter").decode),
                 Call(r.oracle, o("status").encode(), o("status").decode),
                 Call(r.provider, k("global").encode(), k("global").decode),
                 Call(r.market, f("locals").encode(self.liquidator), f("locals").decode)]
        res = await self.chain.multicall(calls, block)
        if any(isinstance(x, CallFailed) for x in res):
            raise RuntimeError(f"{self.name}: market {m.market} reads failed at block {block}")
        risk, (latest, current), (_latest_version, current_index, latest_index), keeper_local = res
        m.now = now
        m.risk = pm.Risk.from_tuple(risk)
        m.latest = pm.OracleView(latest[0], latest[1], latest[2], current)
        m.claimable = keeper_local[3]
        # requested versions not committed yet, then what the owed, outstanding and current versions hold
        idx = list(range(latest_index + 1, min(current_index, latest_index + OUTSTANDING_READ) + 1))
        res = await self.chain.multicall_strict(
            [Call(r.provider, k("requests").encode(i), k("requests").decode) for i in idx], block)
        m.outstanding = list(res)
        versions = sorted({k_[1] for k_ in m.owed} | set(m.outstanding) | {current})
        calls = [Call(r.oracle, o("at").encode(v), o("at").decode) for v in versions]
        calls += [Call(r.provider, k("localCallbacks").encode(v), k("localCallbacks").decode) for v in versions]
        calls += [Call(r.provider, k("responses").encode(v), k("responses").decode) for v in versions]
        res = await self.chain.multicall_strict(calls, block)
        n = len(versions)
        m.receipts = {v: (a[0][2], a[1][0]) for v, a in zip(versions, res[:n])}
        m.callbacks = {v: len(c) for v, c in zip(versions, res[n:2 * n])}
        m.responses = {v: (x[1], x[2]) for v, x in zip(versions, res[2 * n:])}
        self._track_owed(m)

    def _track_owed(self, m: MarketState) -> None:
        """Owed rewards: booked from their version's receipt once it is committed; lost when the version
        was committed invalid, or timed out uncommitted (it can then only be committed invalid)."""
        assert m.latest and m.risk
        r = m.r
        for key, ow in list(m.owed.items()):
            ow.committed = ow.version <= m.latest.latest_timestamp and ow.version not in m.outstanding
            valid, fee = m.receipts.get(ow.version, (False, 0))
            if ow.committed and valid:
                ow.amount = pm.liquidation_fee(fee, m.risk.liquidation_fee)
            elif ow.committed:
                ow.lost = (f"{LOST}: version {ow.version} was committed invalid (not committed within the oracle's "
                           f"{r.timeout}s timeout): the liquidation was voided and pays no fee")
            elif m.now > ow.version + r.timeout:
                ow.lost = (f"{LOST}: version {ow.version} was not committed within the oracle's {r.timeout}s "
                           "timeout; it can only be committed invalid, which voids the liquidation and pays no fee")
            if ow.lost:
                log.warning("perennial.reward_lost", protocol=self.name, market=m.market, account=ow.account,
                            version=ow.version, why=ow.lost)
                m.lost.append(ow)
                del m.owed[key]

    async def _refresh_accounts(self, m: MarketState, block: int) -> None:
        """Each account settled to the latest version in an eth_call (settle then its views, in one
        Multicall3 call), its on-chain checkpoint before that; the market's global state after; the
        keeper oracle's gas oracle costs for the fees of the next versions."""
        assert self.chain
        r, f = m.r, MARKET.fn
        g_calls = [Call(r.market, f("settle").encode(r.market), None),
                   Call(r.market, f("position").encode(), f("position").decode),
                   Call(r.market, f("global").encode(), f("global").decode),
                   Call(r.commitment_gas_oracle, GAS_ORACLE.fn("cost").encode(m.update_fee),
                        GAS_ORACLE.fn("cost").decode),
                   Call(r.commitment_gas_oracle, GAS_ORACLE.fn("cost").encode(0), GAS_ORACLE.fn("cost").decode),
                   Call(r.settlement_gas_oracle, GAS_ORACLE.fn("cost").encode(0), GAS_ORACLE.fn("cost").decode)]
        res = await self.chain.multicall(g_calls, block)
        if any(isinstance(x, CallFailed) for x in res[1:]):
            raise RuntimeError(f"{self.name}: market {m.market} global reads failed at block {block}")
        _, position, glob, m.sync_cost, m.sync_cost0, m.async_cost = res
        m.glob = pm.GlobalView(pm.Position(*position), glob[5], glob[7][0], glob[7][1])
        accounts = list(m.accounts)
        for i in range(0, len(accounts), ACCOUNTS_PER_CALL):
            group = accounts[i:i + ACCOUNTS_PER_CALL]
            calls = []
            for u in group:
                calls += [Call(r.market, f("positions").encode(u), f("positions").decode),
                          Call(r.market, f("settle").encode(u), None)]
                calls += [Call(r.market, f(n).encode(u), f(n).decode) for n in ("positions", "locals", "pendings")]
            res = await self.chain.multicall(calls, block)
            for j, u in enumerate(group):
                raw, settled, pos, loc, pend = res[5 * j: 5 * j + 5]
                if any(isinstance(x, CallFailed) for x in (raw, settled, pos, loc, pend)):
                    log.warning("perennial.account_read_failed", protocol=self.name, account=u)
                    continue
                st = m.accounts[u]
                st.settled_at = raw[0]
                st.position, st.local, st.pending = pm.Position(*pos), pm.Local(*loc), tuple(pend)
                st.block = block
        # What settling the accounts that owe us at committed versions credits us, as the Market
        # computes it (its own record of each version's fees).
        owing = sorted({ow.account for ow in m.owed.values() if ow.committed
                        and m.accounts.get(ow.account, AccountState()).settled_at < ow.version})
        calls = [Call(r.market, f("settle").encode(u), None) for u in owing]
        calls.append(Call(r.market, f("locals").encode(self.liquidator), f("locals").decode))
        res = await self.chain.multicall(calls, block)
        if isinstance(res[-1], CallFailed):
            raise RuntimeError(f"{self.name}: market {m.market} keeper account read failed at block {block}")
        m.claimable_settled = res[-1][3]

    async def _fetch_prices(self, block: int) -> None:
        assert self.pull_oracle
        feeds = sorted({m.r.feed_id for m in self.markets.values()})
        if not feeds:
            return  # the factory has created no market yet
        try:
            update = await self.pull_oracle.fetch(feeds)
        except Exception as e:
            for m in self.markets.values():
                m.fresh, m.update, m.fresh_error = None, None, f"pull oracle: {e}"
            return
        for m in self.markets.values():
            fid = m.r.feed_id
            m.fresh, m.fresh_error = update.feeds[fid], None
            m.update = PriceUpdate((update.blob(fid),), {fid: m.fresh}, {fid: update.blob(fid)})
            try:
                m.update_fee = await self.pull_oracle.update_fee(m.update, m.r.pyth)
            except Exception as e:
                m.fresh, m.update, m.fresh_error = None, None, f"pull oracle fee: {e}"

    # ---- valuation -----------------------------------------------------------------------------
    def _dsu(self) -> TokenPrice:
        return TokenPrice(self.dsu_price, 18, "DSU")

    def _fees(self, m: MarketState, callbacks: int, *, valid: bool = True) -> tuple[int, int]:
        """(syncFee, asyncFee) a requested version committed now would get (KeeperOracle: its gas
        oracles' cost of Pyth's fee, or of nothing for an invalid commit)."""
        return pm.keeper_fees(m.sync_cost if valid else m.sync_cost0, m.async_cost, callbacks, m.max_settlement_fee)

    def _commit_plan(self, m: MarketState) -> tuple[list[pm.Commit], int, int, str | None]:
        """(commits to send, version the check is made at, its price, why no fresh price)."""
        assert m.latest
        latest = m.latest
        if m.fresh is None:
            return [], latest.latest_timestamp, latest.latest_price, m.fresh_error
        plan = pm.commit_plan(m.fresh.publish_time, latest.latest_timestamp, m.outstanding, m.now, m.r.timeout,
                              m.valid_from, m.valid_to)
        if isinstance(plan, str):
            return [], latest.latest_timestamp, latest.latest_price, plan
        return plan, plan[-1].version, pm.pyth_price6(m.fresh.price, m.fresh.expo), None

    def _commit_tx(self, m: MarketState, c: pm.Commit) -> TxRequest:
        r = m.r
        fn = KEEPER_FACTORY.fn("commit")
        if not c.valid:
            return TxRequest(r.keeper_factory, fn.encode([r.oracle_id], c.version, b""),
                             what=f"commit timed-out version {c.version} invalid")
        assert m.update
        kind = "requested" if c.requested else "fresh"
        return TxRequest(r.keeper_factory, fn.encode([r.oracle_id], c.version, m.update.data[0]),
                         value=m.update_fee, what=f"commit {kind} version {c.version}")

    def _commit_income(self, m: MarketState, commits: list[pm.Commit]) -> int:
        """The sync fees (UFixed6 DSU) the keeper is paid for committing requested versions."""
        return sum(self._fees(m, m.callbacks.get(c.version, 0), valid=c.valid)[0] for c in commits if c.requested)

    def _row(self, m: MarketState, u: str, st: AccountState, version: int,
             price: int) -> tuple[AccountView, int, int]:
        assert st.position and st.local and m.risk and m.glob
        coll = pm.collateral_at(st.local.collateral, st.position, m.glob, m.risk, version, price)
        maint = pm.maintenance(st.position, price, m.risk)
        side = "long" if st.position.long else "short" if st.position.short else "maker"
        notional = st.position.magnitude * abs(price) // pm.UNIT  # DSU, 6 decimals
        row = AccountView(protocol=self.name, account=u, label=f"{side} {st.position.magnitude / pm.UNIT:g}",
                          health=coll / maint if maint else None, debt_usd=notional * self.dsu_price // pm.UNIT,
                          liquidatable=maint > 0 and max(coll, 0) < maint, status=HEALTHY)
        return row, coll, maint

    # ---- planning ------------------------------------------------------------------------------
    def assess(self, budget: Budget) -> Assessment:
        out = Assessment()
        for m in self.markets.values():
            if m.latest is None or m.risk is None or m.glob is None:
                continue
            out.add(self._market_assessment(m))
            claim = self._claim(m)
            if claim is not None:
                out.plans.append(claim)
            out.views += [self._lost_view(ow) for ow in m.lost]
        return out

    def replan(self, plan: Plan, budget: Budget) -> Plan | Skip:
        return plan  # nothing is spent from the wallet but gas and the oracle fee

    def _lost_view(self, ow: Owed) -> AccountView:
        """A reward that will never be paid (its version timed out or was committed invalid)."""
        return AccountView(protocol=self.name, account=ow.account, label=f"reward at version {ow.version}",
                           health=None, debt_usd=0, liquidatable=True,
                           status=Skip(SkipCode.REWARD_LOST, ow.lost or "reward lost"))

    def _market_assessment(self, m: MarketState) -> Assessment:
        assert m.latest and m.risk
        commits, version, price, why_no_fresh = self._commit_plan(m)
        out = Assessment()
        liquidatable: list[tuple[str, AccountView, int, int, int]] = []
        # Our protected closes at a timed-out version the plan commits invalid are voided first: the
        # account is judged as it will then be (its position kept, its settlement fee share paid).
        voided = {ow.account: ow.version for ow in m.lost for c in commits if not c.valid and c.version == ow.version}
        for u, st in m.accounts.items():
            if st.block < 0 or st.position is None or (st.position.magnitude == 0 and not st.pending_orders):
                continue
            if u in voided and st.pending_orders == 1 and st.pending_protected and st.local:
                cb = max(m.callbacks.get(voided[u], 0), 1)
                fee = pm.settlement_fee(*self._fees(m, cb, valid=False), cb) // cb
                st = replace(st, pending=(), local=replace(st.local, collateral=st.local.collateral - fee))
            row, coll, maint = self._row(m, u, st, version, price)
            if st.pending_protected:
                out.views.append(replace(row, liquidatable=False,
                                         status=Skip(SkipCode.PENDING, "liquidation pending settlement")))
            elif st.pending_orders:
                out.views.append(replace(row, liquidatable=False,
                                         status=Skip(SkipCode.PENDING, "pending order: checked once it settles")))
            elif not row.liquidatable:
                out.views.append(row)
            else:
                assert st.local
                liquidatable.append((u, row, coll, maint, st.local.collateral))
        if not liquidatable:
            return out
        stale = pm.is_stale(m.latest.current, version, True if commits else m.latest.latest_valid,
                            m.risk.stale_after)
        if stale:
            why = (f"{STALE}: the freshest committable version {version} is {m.latest.current - version}s old "
                   f"(staleAfter {m.risk.stale_after}s)" + (f"; {why_no_fresh}" if why_no_fresh else ""))
            out.views += [replace(row, status=Skip(SkipCode.STALE_ORACLE, why)) for _, row, *_ in liquidatable]
            return out
        return out.add(self._plan(m, commits, version, price, liquidatable))

    def _plan(self, m: MarketState, commits: list[pm.Commit], version: int, price: int,
              liquidatable: list[tuple[str, AccountView, int, int, int]]) -> Assessment:
        """One plan for the market: the commit(s), then a protected close per account (largest first).
        The closes' version is the oracle's current one; its callbacks are those registered there and
        the plan's accounts."""
        assert m.risk and m.latest
        liquidatable.sort(key=lambda x: x[1].debt_usd, reverse=True)
        accounts = [u for u, *_ in liquidatable]
        close_version = m.latest.current
        callbacks = m.callbacks.get(close_version, 0) + len(accounts)
        sync, async_ = self._fees(m, callbacks)
        settlement = pm.settlement_fee(sync, async_, callbacks)
        reward = pm.liquidation_fee(settlement, m.risk.liquidation_fee)  # UFixed6 DSU each
        income = self._commit_income(m, commits)
        close = MARKET.fn("update")
        txs = [self._commit_tx(m, c) for c in commits]
        txs += [TxRequest(m.market, close.encode(u, 0, 0, 0, 0, True), what=f"liquidate {u}") for u in accounts]
        first, row, coll, maint, settled = liquidatable[0]
        label = f"liquidate {len(accounts)}" + (" + commit" if commits else "")
        details = LiquidateDetails(
            market=m.market, collateral=coll, collateral_settled=settled, maintenance=maint, price=price,
            version=version, reward_each=reward, close_version=close_version, settlement_fee=settlement,
            sync_fee=sync, async_fee=async_, callbacks=callbacks, commit_income=income,
            commit_versions=tuple(c.version for c in commits), oracle_fee_wei=sum(t.value for t in txs))
        dsu = m.r.dsu
        plan = Plan(protocol=self.name, kind=batch_kind(accounts), account=first, accounts=tuple(accounts),
                    label=label, txs=tuple(txs), deferred={dsu: reward * len(accounts) * TOKEN18},
                    expected={dsu: income * TOKEN18} if income else {}, prices={dsu: self._dsu()},
                    debt_usd=row.debt_usd, details=details,
                    gas_estimate=sum(COMMIT_REQUESTED_GAS if c.requested else COMMIT_GAS for c in commits)
                    + CLOSE_GAS * len(accounts) + CLOSE_FIRST_EXTRA_GAS)
        covered = [replace(r, label=label, status=Covered(plan, f"liquidated in one plan with {first}"))
                   for _, r, *_ in liquidatable[1:]]
        return Assessment([replace(row, label=label, status=Planned(plan)), *covered], [plan])

    def _claim(self, m: MarketState) -> Plan | None:
        """Collect what is owed: commit the liquidations' requested version if it is the next one and
        the fresh price fits its window (the sync fee is ours), settle the callbacks of committed
        versions through the KeeperFactory (the async fees are ours) or, once those are done, the
        liquidated accounts still unsettled, then claimFee(keeper)."""
        assert m.latest and m.risk
        r = m.r
        txs: list[TxRequest] = []
        income = 0
        commit: pm.Commit | None = None
        waiting = {ow.version for ow in m.owed.values() if not ow.committed}
        if waiting and m.fresh is not None:
            plan = pm.commit_plan(m.fresh.publish_time, m.latest.latest_timestamp, m.outstanding, m.now, r.timeout,
                                  m.valid_from, m.valid_to)
            if not isinstance(plan, str) and len(plan) == 1 and plan[0].requested and plan[0].version in waiting:
                commit = plan[0]
                txs.append(self._commit_tx(m, commit))
                income += self._commit_income(m, plan)
        ready = [ow for ow in m.owed.values() if ow.committed or (commit and ow.version == commit.version)]
        total = m.claimable_settled
        for ow in ready:
            if not ow.committed:  # committed by this plan: as the KeeperOracle will price it now
                cb = m.callbacks.get(ow.version, 0)
                total += pm.liquidation_fee(pm.settlement_fee(*self._fees(m, cb), cb), m.risk.liquidation_fee)
        if total <= 0:
            return None
        versions = sorted({ow.version for ow in ready if m.callbacks.get(ow.version, 0)})
        callbacks = sum(m.callbacks[v] for v in versions)
        if versions:  # KeeperFactory.settle pays msg.sender the version's asyncFee per callback
            income += sum(m.callbacks[v] * (self._fees(m, m.callbacks[v])[1] if commit and v == commit.version
                                            else m.responses.get(v, (0, 0))[1]) for v in versions)
            settle = KEEPER_FACTORY.fn("settle")
            txs.append(TxRequest(r.keeper_factory, settle.encode([r.oracle_id] * len(versions), versions,
                                                                 [m.callbacks[v] for v in versions]),
                                 what=f"settle {callbacks} callbacks of versions {versions}"))
        rest = sorted({ow.account for ow in ready if ow.version not in versions
                       and m.accounts.get(ow.account, AccountState()).settled_at < ow.version})
        market_settle = MARKET.fn("settle")
        if len(rest) > 1:  # settle(account) pays nobody: batched in one Multicall3 transaction
            calls = [Call(m.market, market_settle.encode(a)) for a in rest]
            assert self.chain
            txs.append(TxRequest(self.chain.multicall_address, encode_aggregate3(calls, allow_failure=False),
                                 what=f"settle {len(rest)} accounts (Multicall3)"))
        elif rest:
            txs.append(TxRequest(m.market, market_settle.encode(rest[0]), what=f"settle {rest[0]}"))
        txs.append(TxRequest(m.market, MARKET.fn("claimFee").encode(self.liquidator), what="claimFee"))
        gas = ((COMMIT_REQUESTED_GAS if commit else 0)
               + (SETTLE_GAS + SETTLE_CALLBACK_GAS * callbacks if versions else 0)
               + SETTLE_GAS * len(rest) + CLAIM_GAS)
        dsu = r.dsu
        settled_now = tuple(sorted({ow.account for ow in ready
                                    if m.accounts.get(ow.account, AccountState()).settled_at < ow.version}))
        return Plan(
            protocol=self.name, kind=PlanKind.CLAIM, account=self.liquidator, accounts=(),
            label="claim liquidation fees", txs=tuple(txs), collects={dsu: total * TOKEN18},
            expected={dsu: income * TOKEN18} if income else {}, prices={dsu: self._dsu()},
            gas_estimate=gas, force=True, min_gas_multiple=self.cfg.claim_min_gas_multiple,
            details=ClaimDetails(market=m.market, claimable=m.claimable, settled_now=settled_now,
                                 settled_versions=tuple(versions), commit_version=commit.version if commit else None,
                                 keeper_fees=income, total=total))

    # ---- shadow mode ---------------------------------------------------------------------------------
    async def liquidation_events(self, from_block: int, to_block: int) -> list[ObservedLiquidation]:
        """OrderCreated events of a protected order with a liquidator (Perennial's liquidation: the
        liquidator closes the position); value = the liquidation fee it is owed (the last committed
        version's settlement fee x riskParameter.liquidationFee, in DSU), as the keeper's plans count it."""
        assert self.chain
        if not self.markets:
            return []
        found = []
        for lg in await self.chain.get_logs(list(self.markets), [[ORDER_CREATED.topic]], from_block, to_block):
            m = self.markets.get(lg.address)
            if m is None:
                continue
            e = ORDER_CREATED.decode(lg.topics, lg.data)
            if e["order"][PROTECTION] and int(e["liquidator"], 16) != 0:
                found.append((m, lg, e))
        # The version's settlement fee is shared by its callbacks: the liquidations of the same
        # market at the same oracle version (Order.timestamp), as the keeper's own plans count them.
        per_version: dict[tuple[str, int], int] = {}
        for m, _, e in found:
            key = (m.market, e["order"][0])
            per_version[key] = per_version.get(key, 0) + 1
        out = []
        for m, lg, e in found:
            value = None
            if m.risk is not None:
                n = per_version[(m.market, e["order"][0])]
                fee = pm.liquidation_fee(pm.settlement_fee(*self._fees(m, n), n), m.risk.liquidation_fee)
                value = self._dsu().usd(fee * TOKEN18)
            out.append(ObservedLiquidation(self.name, PlanKind.LIQUIDATION, e["account"], e["liquidator"],
                                           lg.block_number, lg.tx_hash, lg.log_index, value, "liquidation"))
        return out
