"""Perennial V2: the markets configured and, given market_factory, every market the MarketFactory
created (InstanceRegistered / MarketCreated logs); accounts from each Market's OrderCreated logs;
positions, collateral and the oracle's state through Multicall3; the maintenance check made
exactly as Perennial makes it at the latest committed version, but at the version the keeper would
commit with a fresh pull-oracle (Pyth) price, so that a move visible only off chain is acted on.

A liquidation plan is one commit(ids, version, update) paying the Pyth fee, then
update(account, 0, 0, 0, 0, true) per account (a protected full close). Both must come from the
keeper's own address: the Market records msg.sender as the liquidator and the oracle pays the
committer, so a batching contract would be paid instead; the engine sends them back to back so they
land in one block. The reward (liquidationFee = the version's settlementFee x riskParameter.liquidationFee, in
DSU) is credited only when the liquidation's version is committed and the account settled: it is
booked as a deferred credit, tracked per (market, account, version), and collected by a claim plan
(commit of the requested version if needed, the settle(account) calls batched in one Multicall3
transaction, claimFee(keeper)) once worth
claim_min_gas_multiple x its gas."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import structlog
from eth_utils import to_checksum_address

from keeper.abi import load
from keeper.chain.client import Chain
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
    Services,
    Skip,
    SkipCode,
    TokenPrice,
    batch_kind,
)
from keeper.protocols.perennial_v2 import maths as pm
from keeper.protocols.perennial_v2.config import PerennialV2Config

log = structlog.get_logger()
MARKET = load("perennial_v2/perennial_market")
ORACLE = load("perennial_v2/perennial_oracle")
ERC20 = load("ERC20")
FACTORY = load("perennial_v2/perennial_market_factory")
ORDER_CREATED = MARKET.event("OrderCreated")
# A market's creation: root Factory's InstanceRegistered (every Perennial V2 release) and
# IMarketFactory's MarketCreated (whose definition tuple changed between releases): either names
# the market in topic 1.
CREATION_TOPICS = [FACTORY.event("InstanceRegistered").topic, FACTORY.event("MarketCreated").topic]
PROTECTION = 9  # Order.protection, index in the tuple
TOKEN18 = 10**12  # UFixed6 DSU -> the 18-decimal token
# Estimates before simulation (the stand-in on Anvil: commit ~141k, protected close ~515-575k,
# settle ~150-165k, claimFee ~67k).
COMMIT_GAS = 150_000
CLOSE_GAS = 550_000
SETTLE_GAS = 160_000
CLAIM_GAS = 70_000
STALE = "oracle stale"
HEALTHY = Skip(SkipCode.NOT_LIQUIDATABLE, "healthy")


@dataclass(frozen=True)
class LiquidateDetails(Details):
    market: str
    collateral: int  # the lead account's, at the price checked (UFixed6 DSU)
    maintenance: int
    price: int
    reward_each: int  # UFixed6 DSU per account, credited once the version is committed and settled
    settlement_fee_estimate: int
    commit_version: int | None
    oracle_fee_wei: int


@dataclass(frozen=True)
class ClaimDetails(Details):
    market: str
    claimable: int
    settled_now: tuple[str, ...]
    commit_version: int | None
    total: int


@dataclass
class AccountState:
    position: pm.Position | None = None
    local: pm.Local | None = None
    pending: tuple = ()  # pendings(account): the aggregate pending Order
    checkpoint_price: int = 0  # the version price at position.timestamp
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
    amount: int = 0  # UFixed6 DSU, once the version's receipt is known (else the estimate)
    committed: bool = False
    valid: bool = True
    settled: bool = False


@dataclass
class MarketState:
    market: str
    oracle: str = ""
    factory: str = ""
    pyth: str = ""
    oracle_id: bytes = b""
    feed_id: str = ""
    dsu: str = ""
    granularity: int = 1
    valid_from: int = 0
    valid_to: int = 0
    timeout: int = 0
    risk: pm.Risk | None = None
    latest: pm.OracleView | None = None
    next_requested: int = 0
    settlement_fee: int = 0  # estimate for the next requested version: the last committed one's
    claimable: int = 0  # locals(keeper).claimable, UFixed6
    accounts: dict[str, AccountState] = field(default_factory=dict)
    owed: dict[tuple[str, int], Owed] = field(default_factory=dict)
    fresh: FeedPrice | None = None
    update: PriceUpdate | None = None
    update_fee: int = 0
    fresh_error: str | None = None


class PerennialV2Adapter(Adapter[PerennialV2Config]):
    def __init__(self, cfg: PerennialV2Config, services: Services):
        liquidator, pull_oracle = services.liquidator, services.pull_oracle
        self.cfg = cfg
        self.name = cfg.name
        self.liquidator = liquidator
        self.pull_oracle = pull_oracle
        self.markets = {m: MarketState(m) for m in cfg.markets}
        self.factory = cfg.market_factory
        self.skipped_markets: set[str] = set()  # created by the factory but not Pyth keeper-oracle markets
        self.dsu_feed = ChainlinkFeed(cfg.dsu_usd_feed) if cfg.dsu_usd_feed else None
        self.dsu_price = USD  # DSU valued at 1 USD unless dsu_usd_feed
        self.chain: Chain | None = None

    def contracts(self) -> dict[str, str]:
        out = {"MarketFactory": self.factory} if self.factory else {}
        for i, m in enumerate(self.markets.values()):
            out[f"Market[{i}]"] = m.market
            if m.oracle:
                out[f"Market[{i}].oracle"] = m.oracle
                out[f"Market[{i}].pyth"] = m.pyth
        return out

    def pending_rewards(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.markets.values():
            if m.claimable:
                out[m.dsu] = out.get(m.dsu, 0) + m.claimable * TOKEN18
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
            except ValueError as e:
                raise StartupError(f"{self.name}: {e}") from None

    async def _check_factory(self, chain: Chain) -> None:
        """The factory has code and made every configured market (root Factory.instances)."""
        assert self.factory
        if not await chain.get_code(self.factory):
            raise StartupError(f"{self.name}: no contract at market_factory {self.factory}")
        if not self.markets:
            return
        fn = FACTORY.fn("instances")
        try:
            made = await chain.multicall_strict([Call(self.factory, fn.encode(m), fn.decode) for m in self.markets])
        except Exception as e:  # noqa: BLE001
            raise StartupError(f"{self.name}: market_factory {self.factory} does not answer instances(address): "
                               f"{e}") from None
        foreign = [m for m, ok in zip(self.markets, made) if not ok]
        if foreign:
            raise StartupError(f"{self.name}: markets {foreign} were not created by market_factory {self.factory} "
                               "(instances() is false)")

    async def _resolve(self, m: MarketState) -> None:
        """Read a market's oracle, DSU token, Pyth keeper oracle (its factory, id, Pyth, feed,
        timeout, granularity and publish window): the same for configured and discovered markets.
        ValueError when it is not a Perennial market priced by a Pyth keeper oracle."""
        chain = self.chain
        assert chain
        if not await chain.get_code(m.market):
            raise ValueError(f"no contract at market {m.market}")
        f, o = MARKET.fn, ORACLE.fn
        try:
            m.oracle, m.dsu = await chain.multicall_strict(
                [Call(m.market, f(n).encode(), f(n).decode) for n in ("oracle", "token")])
            m.factory, m.timeout = await chain.multicall_strict(
                [Call(m.oracle, o(n).encode(), o(n).decode) for n in ("factory", "timeout")])
            m.oracle_id, m.pyth, param = await chain.multicall_strict([
                Call(m.factory, o("ids").encode(m.oracle), o("ids").decode),
                Call(m.factory, o("pyth").encode(), o("pyth").decode),
                Call(m.factory, o("parameter").encode(), o("parameter").decode)])
            underlying = await chain.multicall_strict(
                [Call(m.factory, o("toUnderlyingId").encode(m.oracle_id), o("toUnderlyingId").decode)])
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{m.market} does not answer as a Perennial market with a Pyth keeper oracle: "
                             f"{e}") from None
        m.feed_id = "0x" + underlying[0].hex()
        _latest_g, m.granularity, _after, _fee, m.valid_from, m.valid_to = param
        if m.granularity == 0:
            raise ValueError(f"oracle {m.oracle} has granularity 0")

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
                m.owed.setdefault(key, Owed(account, ev["order"][0]))
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
            except ValueError as e:
                # e.g. a market on another oracle type (Chainlink/Stork keeper oracles): not watched.
                self.skipped_markets.add(market)
                log.warning("perennial.market_skipped", protocol=self.name, market=market, why=str(e))
                continue
            self.markets[market] = m
            log.info("perennial.market_found", protocol=self.name, market=market, oracle=m.oracle,
                     feed=m.feed_id, block=lg.block_number)

    # ---- mirror ------------------------------------------------------------------------------
    async def refresh(self, block: int, *, all_details: bool = False) -> None:
        assert self.chain
        if self.dsu_feed is not None:
            self.dsu_price = (await self.dsu_feed.read(self.chain, block)).price_8
        for m in self.markets.values():
            await self._refresh_market(m, block)
        await self._fetch_prices()

    async def _refresh_market(self, m: MarketState, block: int) -> None:
        assert self.chain
        f, o = MARKET.fn, ORACLE.fn
        accounts = list(m.accounts)
        calls = [Call(m.market, f("riskParameter").encode(), f("riskParameter").decode),
                 Call(m.oracle, o("status").encode(), o("status").decode),
                 Call(m.oracle, o("next").encode(), o("next").decode),
                 Call(m.oracle, o("global").encode(), o("global").decode),
                 Call(m.market, f("locals").encode(self.liquidator), f("locals").decode)]
        for u in accounts:
            calls += [Call(m.market, f(n).encode(u), f(n).decode) for n in ("positions", "locals", "pendings")]
        res = await self.chain.multicall(calls, block)
        if any(isinstance(r, CallFailed) for r in res[:5]):
            raise RuntimeError(f"{self.name}: market {m.market} reads failed at block {block}")
        risk, (latest, current), m.next_requested, glob, keeper_local = res[:5]
        m.risk = pm.Risk.from_tuple(risk)
        m.latest = pm.OracleView(latest[0], latest[1], latest[2], current)
        m.claimable = keeper_local[3]
        for j, u in enumerate(accounts):
            row = res[5 + 3 * j: 8 + 3 * j]
            if any(isinstance(x, CallFailed) for x in row):
                log.warning("perennial.account_read_failed", protocol=self.name, account=u)
                continue
            st = m.accounts[u]
            st.position, st.local, st.pending = pm.Position(*row[0]), pm.Local(*row[1]), tuple(row[2])
            st.block = block
        # Version prices: each account's checkpoint, the versions owed to us, and the last requested
        # version committed (its settlement fee estimates the next one's).
        stamps = {st.position.timestamp for st in m.accounts.values() if st.position} | {k[1] for k in m.owed}
        req = await self.chain.multicall([Call(m.oracle, o("requests").encode(glob[1]), o("requests").decode)], block)
        last_requested = req[0] if not isinstance(req[0], CallFailed) else 0
        if last_requested:
            stamps.add(last_requested)
        stamps.discard(0)
        order = sorted(stamps)
        ats = await self.chain.multicall([Call(m.oracle, o("at").encode(t), o("at").decode) for t in order], block)
        versions = {t: a for t, a in zip(order, ats) if not isinstance(a, CallFailed)}
        if last_requested in versions:
            m.settlement_fee = versions[last_requested][1][0]
        for st in m.accounts.values():
            if st.position and st.position.timestamp in versions:
                st.checkpoint_price = versions[st.position.timestamp][0][1]
        self._track_owed(m, versions)

    def _track_owed(self, m: MarketState, versions: dict[int, tuple]) -> None:
        assert m.latest and m.risk
        for key, ow in list(m.owed.items()):
            st = m.accounts.get(ow.account)
            ow.committed = ow.version <= m.latest.latest_timestamp
            if ow.committed and ow.version in versions:
                (version, receipt) = versions[ow.version]
                ow.valid = version[2]
                ow.amount = pm.liquidation_fee(receipt[0], m.risk.liquidation_fee) if ow.valid else 0
            else:
                ow.amount = pm.liquidation_fee(m.settlement_fee, m.risk.liquidation_fee)
            ow.settled = bool(st and st.position and st.position.timestamp >= ow.version)
            if ow.settled or (ow.committed and not ow.valid):
                if not ow.valid:
                    log.warning("perennial.reward_lost", protocol=self.name, account=ow.account, version=ow.version,
                                why="the liquidation's version was committed invalid")
                del m.owed[key]  # credited into claimable (or lost)

    async def _fetch_prices(self) -> None:
        assert self.pull_oracle
        feeds = sorted({m.feed_id for m in self.markets.values()})
        if not feeds:
            return  # the factory has created no market yet
        try:
            update = await self.pull_oracle.fetch(feeds)
        except Exception as e:  # noqa: BLE001
            for m in self.markets.values():
                m.fresh, m.update, m.fresh_error = None, None, f"pull oracle: {e}"
            return
        for m in self.markets.values():
            m.fresh, m.fresh_error = update.feeds[m.feed_id], None
            m.update = PriceUpdate((update.blob(m.feed_id),), {m.feed_id: m.fresh}, {m.feed_id: update.blob(m.feed_id)})
            try:
                m.update_fee = await self.pull_oracle.update_fee(m.update, m.pyth)
            except Exception as e:  # noqa: BLE001
                m.fresh, m.update, m.fresh_error = None, None, f"pull oracle fee: {e}"

    # ---- valuation -----------------------------------------------------------------------------
    def _dsu(self) -> TokenPrice:
        return TokenPrice(self.dsu_price, 18, "DSU")

    def _commit_plan(self, m: MarketState) -> tuple[pm.CommitChoice | None, int, int, str | None]:
        """(commit to send or None, version the check is made at, its price, why no fresh price)."""
        assert m.latest
        latest = m.latest
        if m.fresh is None:
            return None, latest.latest_timestamp, latest.latest_price, m.fresh_error
        choice = pm.commit_version(m.fresh.publish_time, latest.latest_timestamp, m.next_requested,
                                   m.valid_from, m.valid_to)
        if isinstance(choice, str):
            return None, latest.latest_timestamp, latest.latest_price, choice
        return choice, choice.version, pm.pyth_price6(m.fresh.price, m.fresh.expo), None

    def _commit_tx(self, m: MarketState, choice: pm.CommitChoice) -> TxRequest:
        assert m.update
        kind = "requested" if choice.requested else "fresh"
        return TxRequest(m.factory, ORACLE.fn("commit").encode([m.oracle_id], choice.version, m.update.data[0]),
                         value=m.update_fee, what=f"commit {kind} version {choice.version}")

    def _row(self, m: MarketState, u: str, st: AccountState, price: int) -> tuple[AccountView, int, int]:
        assert st.position and st.local and m.risk
        coll = pm.collateral_at(st.local.collateral, st.position, st.checkpoint_price, price)
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
            if m.latest is None or m.risk is None:
                continue
            out.add(self._market_opportunities(m))
            claim = self._claim(m)
            if claim is not None:
                out.plans.append(claim)
        return out

    def replan(self, plan: Plan, budget: Budget) -> Plan | Skip:
        return plan  # nothing is spent from the wallet but gas and the oracle fee

    def _market_opportunities(self, m: MarketState) -> Assessment:
        assert m.latest and m.risk
        choice, version, price, why_no_fresh = self._commit_plan(m)
        out = Assessment()
        liquidatable: list[tuple[str, AccountView, int, int]] = []
        for u, st in m.accounts.items():
            if st.block < 0 or st.position is None or (st.position.magnitude == 0 and not st.pending_orders):
                continue
            row, coll, maint = self._row(m, u, st, price)
            if st.pending_protected:
                out.views.append(replace(row, liquidatable=False,
                                         status=Skip(SkipCode.PENDING, "liquidation pending settlement")))
            elif st.pending_orders:
                out.views.append(replace(row, liquidatable=False,
                                         status=Skip(SkipCode.PENDING, "pending order: checked once it settles")))
            elif not row.liquidatable:
                out.views.append(row)
            else:
                liquidatable.append((u, row, coll, maint))
        if not liquidatable:
            return out
        stale = pm.is_stale(m.latest.current, version, True if choice else m.latest.latest_valid,
                            m.risk.stale_after)
        if stale:
            why = (f"{STALE}: the freshest committable version {version} is {m.latest.current - version}s old "
                   f"(staleAfter {m.risk.stale_after}s)" + (f"; {why_no_fresh}" if why_no_fresh else ""))
            out.views += [replace(row, status=Skip(SkipCode.STALE_ORACLE, why)) for _, row, _, _ in liquidatable]
            return out
        return out.add(self._plan(m, choice, price, liquidatable))

    def _plan(self, m: MarketState, choice: pm.CommitChoice | None, price: int,
              liquidatable: list[tuple[str, AccountView, int, int]]) -> Assessment:
        """One plan for the market: the commit, then a protected close per account (largest first)."""
        assert m.risk
        liquidatable.sort(key=lambda x: x[1].debt_usd, reverse=True)
        accounts = [u for u, *_ in liquidatable]
        reward = pm.liquidation_fee(m.settlement_fee, m.risk.liquidation_fee)  # UFixed6 DSU each
        close = MARKET.fn("update")
        txs = [self._commit_tx(m, choice)] if choice else []
        txs += [TxRequest(m.market, close.encode(u, 0, 0, 0, 0, True), what=f"liquidate {u}") for u in accounts]
        first, row, coll, maint = liquidatable[0]
        label = f"liquidate {len(accounts)}" + (" + commit" if choice else "")
        details = LiquidateDetails(market=m.market, collateral=coll, maintenance=maint, price=price,
                                   reward_each=reward, settlement_fee_estimate=m.settlement_fee,
                                   commit_version=choice.version if choice else None,
                                   oracle_fee_wei=m.update_fee if choice else 0)
        plan = Plan(protocol=self.name, kind=batch_kind(accounts), account=first, accounts=tuple(accounts),
                    label=label, txs=tuple(txs), deferred={m.dsu: reward * len(accounts) * TOKEN18},
                    prices={m.dsu: self._dsu()}, debt_usd=row.debt_usd, details=details,
                    gas_estimate=(COMMIT_GAS if choice else 0) + CLOSE_GAS * len(accounts))
        covered = [replace(r, label=label, status=Covered(plan, f"liquidated in one plan with {first}"))
                   for _, r, _, _ in liquidatable[1:]]
        return Assessment([replace(row, label=label, status=Planned(plan)), *covered], [plan])

    def _claim(self, m: MarketState) -> Plan | None:
        """Collect what is owed: commit the liquidations' requested version if it is the next one
        and the fresh price fits its window, settle the liquidated accounts whose version is
        committed, then claimFee(keeper)."""
        txs: list[TxRequest] = []
        total = m.claimable
        settle = MARKET.fn("settle")
        choice = None
        pending = [ow for ow in m.owed.values() if not ow.settled]
        waiting = [ow for ow in pending if not ow.committed]
        if waiting and m.fresh is not None and m.latest is not None:
            c = pm.commit_version(m.fresh.publish_time, m.latest.latest_timestamp, m.next_requested,
                                  m.valid_from, m.valid_to)
            if isinstance(c, pm.CommitChoice) and c.requested and any(ow.version == c.version for ow in waiting):
                choice = c
                txs.append(self._commit_tx(m, c))
        to_settle = []
        for ow in sorted(pending, key=lambda x: x.version):
            if ow.committed and ow.valid or (choice and ow.version == choice.version):
                to_settle.append(ow.account)
                total += ow.amount
        if total <= 0:
            return None
        # settle(account) pays nobody, so several go in one Multicall3 transaction (all or nothing),
        # as Perennial's settlement keepers batch them; the commit (its sync fee goes to msg.sender)
        # and claimFee (pays msg.sender) stay the keeper's own calls.
        if len(to_settle) > 1:
            assert self.chain
            calls = [Call(m.market, settle.encode(a)) for a in to_settle]
            txs.append(TxRequest(self.chain.multicall_address, encode_aggregate3(calls, allow_failure=False),
                                 what=f"settle {len(to_settle)} accounts (Multicall3)"))
        elif to_settle:
            txs.append(TxRequest(m.market, settle.encode(to_settle[0]), what=f"settle {to_settle[0]}"))
        txs.append(TxRequest(m.market, MARKET.fn("claimFee").encode(self.liquidator), what="claimFee"))
        n_settle = len(to_settle)
        return Plan(
            protocol=self.name, kind=PlanKind.CLAIM, account=self.liquidator, accounts=(),
            label="claim liquidation fees", txs=tuple(txs), collects={m.dsu: total * TOKEN18},
            prices={m.dsu: self._dsu()},
            gas_estimate=(COMMIT_GAS if choice else 0) + SETTLE_GAS * n_settle + CLAIM_GAS, force=True,
            min_gas_multiple=self.cfg.claim_min_gas_multiple,
            details=ClaimDetails(market=m.market, claimable=m.claimable, settled_now=tuple(to_settle),
                                 commit_version=choice.version if choice else None, total=total))

    # ---- shadow mode ---------------------------------------------------------------------------------
    async def liquidation_events(self, from_block: int, to_block: int) -> list[ObservedLiquidation]:
        """OrderCreated events of a protected order with a liquidator (Perennial's liquidation: the
        liquidator closes the position); value = the liquidation fee it is owed (the last committed
        version's settlement fee x riskParameter.liquidationFee, in DSU), as the keeper's plans count it."""
        assert self.chain
        if not self.markets:
            return []
        out = []
        for lg in await self.chain.get_logs(list(self.markets), [[ORDER_CREATED.topic]], from_block, to_block):
            m = self.markets.get(lg.address)
            if m is None:
                continue
            e = ORDER_CREATED.decode(lg.topics, lg.data)
            if not e["order"][PROTECTION] or int(e["liquidator"], 16) == 0:
                continue
            value = None if m.risk is None else self._dsu().usd(
                pm.liquidation_fee(m.settlement_fee, m.risk.liquidation_fee) * TOKEN18)
            out.append(ObservedLiquidation(self.name, PlanKind.LIQUIDATION, e["account"], e["liquidator"],
                                           lg.block_number, lg.tx_hash, lg.log_index, value, "liquidation"))
        return out
