"""Gearbox V3 (credit accounts): credit managers from the config (or, with address_provider, from
the ContractsRegister the AddressProviderV3 names, see gearbox_v3.discover), their facade, pool, underlying,
quota keeper and price oracle read from each credit manager; accounts from the facade's
OpenCreditAccount / CloseCreditAccount / LiquidateCreditAccount / PartiallyLiquidateCreditAccount logs;
each block, through Multicall3, the manager's own views (calcDebtAndCollateral DEBT_COLLATERAL,
isLiquidatable(ca, 10000)), every collateral balance and quota, and PriceOracleV3 prices.

Pull feeds: at start the oracle's main feed of every token is asked `updatable()`; an updatable
(Pyth) feed's `priceFeedId()` is kept, and the keeper needs a [pull_oracle] to price it. Each refresh
fetches fresh signed updates for those feed ids, and every Multicall3 batch starts with
`feed.updatePrice(abi.encode(publishTime, [blob]))` for each of them (no access control; the feed
pays Pyth's fee from its own balance), so the views read the prices the facade will use after the
same on-demand updates, which the liquidation then carries as `priceUpdates`.

Two liquidations are planned for each unhealthy account and the more profitable is kept:
- partial: partiallyLiquidateCreditAccount(ca, token, repaidAmount, minSeizedAmount, to, priceUpdates):
  the liquidator pays underlying (pulled by the credit manager) and receives the seized collateral
  at the liquidation discount; gearbox_v3.maths picks the token and amount that pay most under the
  facade's checks (HF >= 1 after, debt >= minDebt);
- full: liquidateCreditAccount(ca, to, [onDemandPriceUpdates, addCollateral(underlying),
  withdrawCollateral(token, max, to)...], lossPolicyData): the liquidator adds what the credit
  manager keeps (totalValue x liquidationDiscount, less the account's underlying) and takes every
  collateral (maths.full_liquidation); with bad debt the facade asks the loss policy, which the
  keeper asks first (isLiquidatableWithLoss by eth_call, as the liquidator).
Inventory mode: the wallet pays and keeps the collateral (profit at the oracle's prices). Flash
mode: the LiquidationExecutor borrows the underlying, sells the collateral on Uniswap V3 and repays
(profit as quoted, price impact included; see gearbox_v3.flash)."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import cast

import structlog
from eth_abi import encode as abi_encode
from eth_utils import to_checksum_address

from keeper.abi import load
from keeper.chain.client import Chain
from keeper.chain.multicall import Call, CallFailed
from keeper.chain.sender import TxRequest
from keeper.errors import StartupError, decode_revert
from keeper.protocols.base import (
    AccountView,
    Adapter,
    Assessment,
    Budget,
    Details,
    Execution,
    Modes,
    ObservedLiquidation,
    Plan,
    PlanKind,
    Planned,
    PythFeedRef,
    Services,
    Skip,
    SkipCode,
    Spend,
    TokenPrice,
    no_inventory,
)
from keeper.protocols.gearbox_v3 import discover
from keeper.protocols.gearbox_v3 import flash as gf
from keeper.protocols.gearbox_v3 import maths as gm
from keeper.protocols.gearbox_v3 import mirror as gmir
from keeper.protocols.gearbox_v3.config import GearboxV3Config
from keeper.store.types import MirrorRow
from keeper.swap import execution as fx
from keeper.swap.search import Problem, Solution, Unsolved, solve

log = structlog.get_logger()
CM = load("gearbox_v3/gearbox_credit_manager_v3")
FACADE = load("gearbox_v3/gearbox_credit_facade_v3")
ORACLE = load("gearbox_v3/gearbox_price_oracle_v3")
PQK = load("gearbox_v3/gearbox_pool_quota_keeper_v3")
MULTICALL = load("gearbox_v3/gearbox_credit_facade_v3_multicall")  # the inner calls of a facade multicall
LOSS_POLICY = load("gearbox_v3/gearbox_loss_policy_v3")
FEED = load("gearbox_v3/gearbox_pyth_price_feed")  # IUpdatablePriceFeed + PythPriceFeed.priceFeedId
ERC20 = load("ERC20")

DEBT_COLLATERAL = 3  # CollateralCalcTask.DEBT_COLLATERAL
FULL_ONLY = "needs full liquidation (full_liquidation = false)"
# Before simulation (measured on Anvil: ~350-380k for a partial liquidation).
PARTIAL_GAS = 400_000
PRICE_UPDATE_GAS = 120_000  # per on-demand update (Pyth verification + store write), before simulation
UNLIMITED = 2**255
DISCOVERY_EVENTS = ("OpenCreditAccount", "CloseCreditAccount", "LiquidateCreditAccount",
                    "PartiallyLiquidateCreditAccount")
MARKET_VIEWS = 5  # fees, debtLimits, paused, collateralTokensCount, lossPolicy (then per token: price, LT)
UINT_MAX = 2**256 - 1


@dataclass
class ManagerState:
    """One CreditManagerV3 and what is read from it."""
    cm: str
    facade: str = ""
    pool: str = ""
    underlying: str = ""
    oracle: str = ""
    pqk: str = ""
    tokens: list[str] = field(default_factory=list)  # collateral tokens by mask order; [0] = underlying
    symbols: dict[str, str] = field(default_factory=dict)
    decimals: dict[str, int] = field(default_factory=dict)  # oracle's tokenDecimals
    prices: dict[str, int] = field(default_factory=dict)  # oracle's getPrice (USD, 8 decimals)
    lts: dict[str, int] = field(default_factory=dict)  # current LTs (bps)
    fees: gm.Fees | None = None
    min_debt: int = 0
    max_debt: int = 0
    paused: bool = False
    block: int = -1  # last block whose market reads all succeeded
    feeds: dict[str, str] = field(default_factory=dict)  # token -> the oracle's main price feed
    pull_feeds: dict[str, str] = field(default_factory=dict)  # updatable feed -> Pyth feed id
    updates: list[tuple[str, bytes]] = field(default_factory=list)  # this block's (priceFeed, data)
    price_error: str | None = None  # why this block's on-demand updates could not be had
    loss_policy: str = ""  # the facade's ILossPolicy (asked before a liquidation with bad debt)

    def price(self, token: str) -> gm.Price:
        return gm.Price(self.prices[token], 10 ** self.decimals[token])

    def token_price(self, token: str) -> TokenPrice:
        return TokenPrice(self.prices[token], self.decimals[token], self.symbols.get(token, "?"))


@dataclass
class AccountState:
    cm: str
    debt: gm.Debt | None = None
    total_debt_usd: int = 0
    twv_usd: int = 0
    total_value: int = 0  # calcDebtAndCollateral's totalValue (underlying units)
    liquidatable: bool = False  # isLiquidatable(ca, 10000)
    balances: dict[str, int] = field(default_factory=dict)
    quotas: dict[str, int] = field(default_factory=dict)
    block: int = -1
    loss_ok: bool | None = None  # bad debt: does the loss policy let the liquidator take it (None: no bad debt)


@dataclass(frozen=True)
class GearboxDetails(Details):
    credit_manager: str
    twv_usd: int  # calcDebtAndCollateral's twvUSD and totalDebtUSD before the liquidation
    total_debt_usd: int
    token: str  # the collateral seized
    symbol: str
    repaid_amount: int
    repaid_debt: int
    fee: int
    seized: int
    min_seized: int
    debt_after: int
    hf_after: float
    price_updates: int
    liquidation: str = "partial"
    execution: str = Execution.INVENTORY.value
    flash: fx.FlashReport | None = None  # flash mode: route, quote, lender, profit enforced by the executor


@dataclass(frozen=True)
class GearboxFullDetails(Details):
    credit_manager: str
    twv_usd: int
    total_debt_usd: int
    total_value: int  # underlying units, as the credit manager values the account
    total_funds: int  # what the credit manager keeps: totalValue x liquidationDiscount
    amount_to_pool: int
    loss: int  # the pool's loss (bad debt)
    bad_debt: bool
    added: int  # underlying the liquidator adds
    returned: int  # underlying the credit manager sends back
    withdrawn: dict[str, int]  # token -> collateral taken
    price_updates: int
    liquidation: str = "full"
    execution: str = Execution.INVENTORY.value
    flash: fx.FlashReport | None = None


class GearboxV3Adapter(Adapter[GearboxV3Config]):
    def __init__(self, cfg: GearboxV3Config, services: Services):
        liquidator, pull_oracle = services.liquidator, services.pull_oracle
        self.cfg = cfg
        self.name = cfg.name
        self.liquidator = liquidator
        self.pull_oracle = pull_oracle  # signed prices for pull feeds (on-demand price updates)
        # With address_provider the credit managers are found at start.
        self.managers: dict[str, ManagerState] = {cm: ManagerState(cm) for cm in cfg.credit_managers or []}
        self.accounts: dict[str, AccountState] = {}
        self.chain: Chain | None = None
        self.swaps = services.swaps
        self.flash = cfg.execution == Execution.FLASH
        # credit account -> ("partial", token) / ("full", "") -> this block's flash solution
        self.quotes: dict[str, dict[tuple[str, str], Solution | Unsolved]] = {}
        self.mirror: gmir.GearboxMirror | None = gmir.GearboxMirror() if cfg.incremental else None
        self.last_resync = -1

    @property
    def caller(self) -> str:
        """Who calls the facade: the executor in flash mode, else the keeper's wallet."""
        return self.cfg.executor if self.flash and self.cfg.executor else self.liquidator

    def contracts(self) -> dict[str, str]:
        out: dict[str, str] = {"LiquidationExecutor": self.cfg.executor} if self.flash and self.cfg.executor else {}
        for i, m in enumerate(self.managers.values()):
            out |= {f"CreditManagerV3[{i}]": m.cm, f"CreditFacadeV3[{i}]": m.facade, f"PoolV3[{i}]": m.pool,
                    f"PriceOracleV3[{i}]": m.oracle, f"PoolQuotaKeeperV3[{i}]": m.pqk}
            out |= {f"PythPriceFeed[{i}:{m.symbols.get(t, t[:8])}]": f for t, f in m.feeds.items() if f in m.pull_feeds}
        return out

    def tokens(self) -> set[str]:
        return {m.underlying for m in self.managers.values() if m.underlying}

    def spenders(self) -> set[tuple[str, str]]:
        """Inventory mode pays the underlying from the wallet: the credit manager pulls it."""
        return set() if self.flash else {(m.underlying, m.cm) for m in self.managers.values() if m.underlying}

    # ---- start-up ---------------------------------------------------------------------------
    async def start(self, chain: Chain) -> None:
        self.chain = chain
        if self.cfg.address_provider is not None:
            found = await discover.credit_managers(chain, self.name, self.cfg.address_provider)
            self.managers = {cm: ManagerState(cm) for cm in found}
        for m in self.managers.values():
            if not await chain.get_code(m.cm):
                raise StartupError(f"{self.name}: no contract at credit manager {m.cm}")
            names = ("creditFacade", "pool", "underlying", "priceOracle", "poolQuotaKeeper", "version")
            try:
                res = await chain.multicall_strict([Call(m.cm, CM.fn(n).encode(), CM.fn(n).decode) for n in names])
            except Exception as e:
                raise StartupError(f"{self.name}: {m.cm} does not answer as a CreditManagerV3: {e}") from None
            m.facade, m.pool, m.underlying, m.oracle, m.pqk, version = res
            if not 3_00 <= version < 4_00:
                raise StartupError(f"{self.name}: credit manager {m.cm} reports version {version}, not 3.x")
            await self._load_tokens(m, "latest")
        if self.flash:
            assert self.swaps is not None and self.cfg.executor  # the config requires [swap] and executor
            await self.swaps.start()
            await fx.check_executor(chain, self.name, self.cfg.executor, self.liquidator)

    async def _load_tokens(self, m: ManagerState, block: int | str) -> None:
        """The manager's collateral tokens (mask 1 << i), their oracle decimals and symbols; again
        whenever collateralTokensCount changes (the configurator added one)."""
        assert self.chain
        (n,) = await self.chain.multicall_strict([Call(m.cm, CM.fn("collateralTokensCount").encode(),
                                                       CM.fn("collateralTokensCount").decode)], block)
        f = CM.fn("getTokenByMask")
        m.tokens = await self.chain.multicall_strict([Call(m.cm, f.encode(1 << i), f.decode) for i in range(n)], block)
        params, sym = ORACLE.fn("priceFeedParams"), ERC20.fn("symbol")
        res = await self.chain.multicall([Call(m.oracle, params.encode(t), params.decode) for t in m.tokens]
                                         + [Call(t, sym.encode(), sym.decode) for t in m.tokens], block)
        for t, p, s in zip(m.tokens, res[:n], res[n:]):
            if isinstance(p, CallFailed):
                raise StartupError(f"{self.name}: PriceOracleV3 {m.oracle} has no price feed for {t}")
            m.feeds[t] = p[0]
            m.decimals[t] = p[3]
            m.symbols[t] = s if isinstance(s, str) else t[:8]
        await self._load_pull_feeds(m, block)

    async def _load_pull_feeds(self, m: ManagerState, block: int | str) -> None:
        """Which feeds are updatable (an optional `updatable()`: plain push feeds lack it) and, for
        those, their Pyth feed id. Reserve feeds are not read (the facade's liquidation path prices
        with the main feeds)."""
        assert self.chain
        feeds = list(dict.fromkeys(m.feeds.values()))
        upd, fid = FEED.fn("updatable"), FEED.fn("priceFeedId")
        res = await self.chain.multicall([Call(f, upd.encode(), upd.decode) for f in feeds]
                                         + [Call(f, fid.encode(), fid.decode) for f in feeds], block)
        by_feed = {f: t for t, f in m.feeds.items()}
        m.pull_feeds = {}
        for f, u, i in zip(feeds, res[:len(feeds)], res[len(feeds):]):
            if isinstance(u, CallFailed) or u is not True:
                continue
            sym = m.symbols.get(by_feed[f], by_feed[f])
            if isinstance(i, CallFailed):
                raise StartupError(f"{self.name}: price feed {f} of {sym} is updatable but has no priceFeedId(): "
                                   "only Pyth pull feeds are supported")
            if self.pull_oracle is None:
                raise StartupError(f"{self.name}: price feed {f} of {sym} (credit manager {m.cm}) is a pull feed "
                                   f"(Pyth {'0x' + i.hex()}): a [pull_oracle] table is needed to fetch its "
                                   "on-demand price updates")
            m.pull_feeds[f] = "0x" + i.hex()

    # ---- discovery ---------------------------------------------------------------------------
    async def discover(self, from_block: int, to_block: int) -> int:
        """Accounts in the facades' logs, in log order: opened (or liquidated) -> watched, closed
        (returned to the account factory, which may hand it to someone else later) -> dropped."""
        assert self.chain
        by_facade = {m.facade: m.cm for m in self.managers.values()}
        topics = {FACADE.event(n).topic: n for n in DISCOVERY_EVENTS}
        logs = await self.chain.get_logs(list(by_facade), [list(topics)], from_block, to_block)
        new = 0
        for lg in logs:
            if len(lg.topics) < 2 or lg.address not in by_facade:
                continue
            ca = to_checksum_address("0x" + lg.topics[1][-40:])
            if topics[lg.topics[0]] == "CloseCreditAccount":
                self.accounts.pop(ca, None)
            elif ca not in self.accounts:
                self.accounts[ca] = AccountState(by_facade[lg.address])
                new += 1
        return new

    def account_keys(self) -> set[str]:
        """Each credit manager watched ("<credit manager>") and each credit account with its credit
        manager ("<credit manager>/<account>"): an account returned to the factory is handed again
        only within its credit manager."""
        return set(self.managers) | {f"{st.cm}/{ca}" for ca, st in self.accounts.items()}

    def restore_accounts(self, keys: set[str]) -> bool:
        """Accounts found by an earlier run; refused (discovery reads the logs again) when a key names
        a credit manager this configuration does not watch, or a watched one was not watched then
        (its older logs were never read). Accounts closed since stay listed with debt 0, as a closed
        account does (assess skips them)."""
        parsed = [k.split("/", 1) for k in keys]
        if any(p[0] not in self.managers for p in parsed) or set(self.managers) - {p[0] for p in parsed}:
            return False
        for p in parsed:
            if len(p) == 2:
                self.accounts.setdefault(p[1], AccountState(p[0]))
        return True

    # ---- mirror ------------------------------------------------------------------------------
    def _market_calls(self, m: ManagerState) -> list[Call]:
        calls = [Call(m.cm, CM.fn("fees").encode(), CM.fn("fees").decode),
                 Call(m.facade, FACADE.fn("debtLimits").encode(), FACADE.fn("debtLimits").decode),
                 Call(m.facade, FACADE.fn("paused").encode(), FACADE.fn("paused").decode),
                 Call(m.cm, CM.fn("collateralTokensCount").encode(), CM.fn("collateralTokensCount").decode),
                 Call(m.facade, FACADE.fn("lossPolicy").encode(), FACADE.fn("lossPolicy").decode)]
        price, lt = ORACLE.fn("getPrice"), CM.fn("liquidationThresholds")
        for t in m.tokens:
            calls += [Call(m.oracle, price.encode(t), price.decode), Call(m.cm, lt.encode(t), lt.decode)]
        return calls

    def _account_calls(self, m: ManagerState, ca: str) -> list[Call]:
        cdd, liq = CM.fn("calcDebtAndCollateral"), CM.fn("isLiquidatable")
        bal, quota = ERC20.fn("balanceOf"), PQK.fn("getQuota")
        calls = [Call(m.cm, cdd.encode(ca, DEBT_COLLATERAL), cdd.decode),
                 Call(m.cm, liq.encode(ca, gm.PERCENTAGE_FACTOR), liq.decode)]
        calls += [Call(t, bal.encode(ca), bal.decode) for t in m.tokens]
        calls += [Call(m.pqk, quota.encode(ca, t), quota.decode) for t in m.tokens[1:]]
        return calls

    def mirror_rows(self) -> list[MirrorRow]:
        return self.mirror.rows() if self.mirror is not None else []

    def restore_mirror(self, rows: dict[str, MirrorRow], block: int) -> None:
        if self.mirror is not None:
            self.mirror.restore(rows, block)

    def forget_state(self) -> None:
        if self.mirror is not None:
            self.mirror.forget()  # every account is read again at the next block

    def _watched(self) -> list[str]:
        """Where the mirror's logs come from: facades, pools, quota keepers, collateral tokens."""
        out = [a for m in self.managers.values() for a in (m.facade, m.pool, m.pqk, *m.tokens)]
        return list(dict.fromkeys(out))

    async def refresh(self, block: int, *, all_details: bool = False, _reloaded: bool = False) -> None:
        assert self.chain
        if self.mirror is not None and not all_details:
            return await self._refresh_incremental(self.mirror, block)
        managers = list(self.managers.values())
        accounts = [(ca, st) for ca, st in self.accounts.items()]
        calls: list[Call] = []
        spans: list[tuple[int, int]] = []
        for m in managers:
            start = len(calls)
            calls += self._market_calls(m)
            spans.append((start, len(calls)))
        acc_spans: list[tuple[int, int]] = []
        for ca, st in accounts:
            start = len(calls)
            calls += self._account_calls(self.managers[st.cm], ca)
            acc_spans.append((start, len(calls)))
        await self._fetch_updates(managers)
        res = await self._multicall(managers, calls, block)
        for m, (a, b) in zip(managers, spans):
            if self._apply_market(m, res[a:b], [c.data for c in calls[a:b]], block) == "reload":
                if _reloaded:
                    raise RuntimeError(f"{self.name}: collateral tokens of {m.cm} changed twice at block {block}")
                await self._load_tokens(m, block)
                return await self.refresh(block, all_details=all_details, _reloaded=True)
        for (ca, st), (a, b) in zip(accounts, acc_spans):
            self._apply_account(ca, st, res[a:b], block)
        await self._ask_loss_policy(managers, block)
        await self._quote(block, all_details)

    async def _refresh_incremental(self, mir: gmir.GearboxMirror, block: int, _reloaded: bool = False) -> None:
        """The local mirror (gearbox_v3.mirror): market views and interest indexes in one batch with
        the block's logs, the accounts those name re-read, every account's health computed locally;
        the ones found liquidatable (and those the maths cannot follow) read on chain before planning."""
        assert self.chain
        managers = list(self.managers.values())
        await self._fetch_updates(managers)
        updates, head = self._update_calls(managers)
        calls = list(head)
        spans: list[tuple[int, int, int]] = []
        for m in managers:
            a = len(calls)
            calls += self._market_calls(m)
            b = len(calls)
            calls += gmir.index_calls(m.pool, m.pqk, m.tokens)
            spans.append((a, b, len(calls)))
        res, dirty = await mir.fetch(self.chain, block, calls, self._watched())
        self._check_updates(managers, updates, res[:len(head)])
        terms: dict[str, gmir.Terms] = {}
        for m, (a, b, c) in zip(managers, spans):
            state = self._apply_market(m, res[a:b], [x.data for x in calls[a:b]], block)
            if state == "reload":
                if _reloaded:
                    raise RuntimeError(f"{self.name}: collateral tokens of {m.cm} changed twice at block {block}")
                await self._load_tokens(m, block)
                mir.forget()  # every account is read again with the new tokens
                return await self._refresh_incremental(mir, block, _reloaded=True)
            ix = gmir.parse_indexes(m.tokens, res[b:c])
            if state == "ok" and m.fees is not None and ix is not None:
                terms[m.cm] = gmir.Terms(m.tokens, {t: m.price(t) for t in m.tokens}, dict(m.lts),
                                         m.fees.fee_interest, ix[0], ix[1], frozenset(self.cfg.chain_read_tokens))
        known = {ca: st.cm for ca, st in self.accounts.items()}
        new = mir.sync(known)
        todo = set(known) if dirty is None else (dirty & known.keys()) | new
        await self._mirror_read(mir, todo, block)
        inexact = mir.compute(known, terms)
        if self.last_resync < 0 or dirty is None:
            self.last_resync = block  # everyone was just read
        elif block - self.last_resync >= self.cfg.resync_interval_blocks:
            await self._resync(mir, managers, terms, block)
            self.last_resync = block
        for ca in known:
            st, h = self.accounts[ca], mir.health.get(ca)
            if h is None:
                st.block = -1
                continue
            r = mir.records[ca]
            st.debt, st.total_debt_usd, st.total_value, st.twv_usd = h.debt, h.total_debt_usd, h.total_value, h.twv_usd
            st.liquidatable = h.liquidatable
            st.balances = dict(r.balances)
            st.quotas = {t: q for t, (q, _) in r.quotas.items()}
            st.block = block
        mir.stats.blocks += 1
        mir.block = block
        confirm = sorted(ca for ca in known if self.managers[known[ca]].block == block
                         and (ca in inexact or mir.health[ca].liquidatable))
        if confirm:
            await self._confirm(mir, managers, confirm, block)
        await self._ask_loss_policy(managers, block)
        await self._quote(block, False)

    async def _mirror_read(self, mir: gmir.GearboxMirror, accounts: set[str], block: int) -> None:
        assert self.chain
        if accounts:
            todo = [(ca, self.accounts[ca].cm, self.managers[self.accounts[ca].cm]) for ca in sorted(accounts)]
            await mir.read(self.chain, [(ca, cm, m.pqk, m.tokens) for ca, cm, m in todo], block)

    async def _confirm(self, mir: gmir.GearboxMirror, managers: list[ManagerState], accounts: list[str],
                       block: int) -> None:
        """The manager's own views of ``accounts`` (local maths says liquidatable, or cannot tell):
        the chain's figures replace the local ones; a disagreement is logged and counted."""
        calls: list[Call] = []
        spans: list[tuple[int, int]] = []
        for ca in accounts:
            a = len(calls)
            calls += self._account_calls(self.managers[self.accounts[ca].cm], ca)
            spans.append((a, len(calls)))
        res = await self._multicall(managers, calls, block)
        mir.stats.chain_reads += len(accounts)
        for ca, (a, b) in zip(accounts, spans):
            st, local = self.accounts[ca], mir.health.get(ca)
            self._apply_account(ca, st, res[a:b], block)
            if local is None or st.block != block:
                continue
            mir.stats.confirmed += 1
            mine, chain = (local.twv_usd, local.total_debt_usd, local.liquidatable), (
                st.twv_usd, st.total_debt_usd, st.liquidatable)
            if mine != chain:
                mir.stats.confirm_mismatches += 1
                log.warning("gearbox.mirror_mismatch", protocol=self.name, account=ca, block=block, when="confirm",
                            local=mine, chain=chain)

    async def _resync(self, mir: gmir.GearboxMirror, managers: list[ManagerState], terms: dict[str, gmir.Terms],
                      block: int) -> int:
        """calcDebtAndCollateral of every account the mirror follows, compared with the local
        figures; each mismatch logged, counted and read again. Returns the mismatches."""
        fn = CM.fn("calcDebtAndCollateral")
        accounts = sorted(mir.health)
        res = await self._multicall(managers, [Call(mir.records[ca].cm, fn.encode(ca, DEBT_COLLATERAL), fn.decode)
                                               for ca in accounts], block)
        bad = []
        for ca, cdd in zip(accounts, res):
            if isinstance(cdd, CallFailed):
                continue
            h = mir.health[ca]
            mine = (h.debt.debt, h.debt.index_last_update, h.debt.cumulative_quota_interest, h.debt.accrued_interest,
                    h.debt.accrued_fees, h.total_debt_usd, h.total_value, h.total_value_usd, h.twv_usd)
            chain = (cdd[0], cdd[2], cdd[3], cdd[4], cdd[5], cdd[6], cdd[7], cdd[8], cdd[9])
            if mine != chain:
                bad.append(ca)
                log.warning("gearbox.mirror_mismatch", protocol=self.name, account=ca, block=block, when="resync",
                            local=mine, chain=chain)
        mir.stats.resyncs += 1
        mir.stats.mismatches += len(bad)
        if bad:
            await self._mirror_read(mir, set(bad), block)
            mir.compute(bad, terms)
        log.info("gearbox.mirror_resync", protocol=self.name, block=block, accounts=len(accounts), mismatches=len(bad))
        return len(bad)

    def _apply_market(self, m: ManagerState, row: list, data: list[bytes], block: int) -> str:
        """The market views' results (``_market_calls``): "ok", "failed" (nothing is planned for
        the manager this block) or "reload" (its collateral tokens changed)."""
        if any(isinstance(x, CallFailed) for x in row):
            # e.g. a stale feed: the oracle reverts, and so would the facade. Nothing is planned.
            failed = [data[i][:4].hex() for i, x in enumerate(row) if isinstance(x, CallFailed)]
            log.warning("gearbox.market_read_failed", protocol=self.name, credit_manager=m.cm, block=block,
                        failed=failed)
            m.block = -1
            return "failed"
        fees, (min_debt, max_debt), m.paused, count, m.loss_policy = row[:MARKET_VIEWS]
        if count != len(m.tokens):
            log.info("gearbox.tokens_changed", protocol=self.name, credit_manager=m.cm, count=count)
            return "reload"
        m.fees = gm.Fees(*fees)
        m.min_debt, m.max_debt = min_debt, max_debt
        for i, t in enumerate(m.tokens):
            m.prices[t], m.lts[t] = row[MARKET_VIEWS + 2 * i], row[MARKET_VIEWS + 2 * i + 1]
        m.block = block
        return "ok"

    def _apply_account(self, ca: str, st: AccountState, row: list, block: int) -> None:
        """An account's own views (``_account_calls``) read on chain."""
        m = self.managers[st.cm]
        if m.block != block or any(isinstance(x, CallFailed) for x in row):
            if m.block == block:
                log.warning("gearbox.account_read_failed", protocol=self.name, account=ca)
            st.block = -1
            return
        cdd, st.liquidatable = row[0], row[1]
        n = len(m.tokens)
        st.debt = gm.Debt(cdd[0], cdd[1], cdd[2], cdd[3], cdd[4], cdd[5])
        st.total_debt_usd, st.total_value, st.twv_usd = cdd[6], cdd[7], cdd[9]
        st.balances = dict(zip(m.tokens, row[2:2 + n]))
        st.quotas = {t: q[0] for t, q in zip(m.tokens[1:], row[2 + n:])}
        st.block = block

    def _unhealthy(self, st: AccountState) -> bool:
        return st.liquidatable or st.twv_usd < st.total_debt_usd

    async def _ask_loss_policy(self, managers: list[ManagerState], block: int) -> None:
        """For each unhealthy account with bad debt (CreditFacadeV3._hasBadDebt: totalValue x
        liquidationDiscount < debt + interest), the loss policy's isLiquidatableWithLoss(ca, caller,
        (totalDebtUSD, twvUSD, "")) as the facade will ask it, after the block's price updates."""
        fn = LOSS_POLICY.fn("isLiquidatableWithLoss")
        todo: list[tuple[AccountState, Call]] = []
        for ca, st in self.accounts.items():
            st.loss_ok = None
            m = self.managers[st.cm]
            if st.block != block or st.debt is None or not st.debt.debt or not self._unhealthy(st) or m.fees is None:
                continue
            if st.total_value * m.fees.liquidation_discount < (st.debt.debt + st.debt.accrued_interest) * 10_000:
                todo.append((st, Call(m.loss_policy, fn.encode(ca, self.caller, (st.total_debt_usd, st.twv_usd, b"")),
                                      fn.decode)))
        if not todo:
            return
        res = await self._multicall(managers, [c for _, c in todo], block)
        for (st, _), ok in zip(todo, res):
            st.loss_ok = ok is True

    async def _quote(self, block: int, all_details: bool) -> None:
        """Flash mode (or a scan with [swap]): for each unhealthy account, the most profitable partial
        liquidation of each collateral and the full liquidation, their sales quoted on Uniswap V3."""
        self.quotes = {}
        if self.swaps is None or not (self.flash or all_details):
            return
        problems: list[Problem] = []
        for ca, st in self.accounts.items():
            m = self.managers[st.cm]
            if (st.block != block or st.debt is None or not st.debt.debt or not self._unhealthy(st) or m.paused
                    or m.price_error or m.fees is None):
                continue
            acc = self._account(m, st)
            for t in m.tokens[1:]:
                p = gf.partial_problem((ca, "partial", t), acc, t, self.cfg.target_hf_margin_bps)
                if p is not None:
                    problems.append(p)
            if self.cfg.full_liquidation and st.loss_ok is not False:
                full = gf.full_problem((ca, "full", ""), acc, st.total_value)
                if full is not None:
                    problems.append(full)
        for key, result in (await solve(self.swaps, problems, block)).items():
            ca, kind, t = cast(tuple[str, str, str], key)
            self.quotes.setdefault(ca, {})[(kind, t)] = result

    async def _fetch_updates(self, managers: list[ManagerState]) -> None:
        """This block's on-demand updates: one pull-oracle fetch for every Pyth feed id; each feed's
        data is abi.encode(uint256 expectedPublishTimestamp, bytes[] updateData) (PythPriceFeed.updatePrice)."""
        for m in managers:
            m.updates, m.price_error = [], None
        wanted = [m for m in managers if m.pull_feeds]
        if not wanted:
            return
        assert self.pull_oracle is not None
        ids = list(dict.fromkeys(i for m in wanted for i in m.pull_feeds.values()))
        try:
            upd = await self.pull_oracle.fetch(ids)
            for m in wanted:
                m.updates = [(feed, abi_encode(["uint256", "bytes[]"], [upd.feeds[i].publish_time, [upd.blob(i)]]))
                             for feed, i in m.pull_feeds.items()]
        except Exception as e:
            log.warning("gearbox.pull_oracle_failed", protocol=self.name, feed_ids=ids, error=str(e))
            for m in wanted:
                m.price_error = f"pull oracle failed: {type(e).__name__}: {e}"

    async def _multicall(self, managers: list[ManagerState], calls: list[Call], block: int) -> list:
        """``calls`` in Multicall3 batches that each start with every on-demand update of the block
        (an eth_call's state changes last only for that call), so all views see the updated prices.
        An update that fails marks its managers with the reason."""
        assert self.chain
        updates, head = self._update_calls(managers)
        if not updates:
            return await self.chain.multicall(calls, block)
        size = max(1, self.chain.multicall_chunk - len(head))
        chunks = [calls[i:i + size] for i in range(0, len(calls), size)] or [[]]
        results = await asyncio.gather(*(self.chain.multicall(head + c, block) for c in chunks))
        out: list = []
        for r in results:
            self._check_updates(managers, updates, r[:len(head)])
            out.extend(r[len(head):])
        return out

    def _update_calls(self, managers: list[ManagerState]) -> tuple[list[tuple[str, bytes]], list[Call]]:
        """The block's on-demand updates of ``managers`` and the calls that apply them."""
        updates = list(dict.fromkeys(u for m in managers for u in m.updates))
        fn = FEED.fn("updatePrice")
        return updates, [Call(feed, fn.encode(data)) for feed, data in updates]

    def _check_updates(self, managers: list[ManagerState], updates: list[tuple[str, bytes]], results: list) -> None:
        """An update that failed marks its managers with the reason."""
        for (feed, _), x in zip(updates, results):
            if isinstance(x, CallFailed):
                why = f"on-demand price update of {feed} fails: {decode_revert(x.args[0] if x.args else None)}"
                for m in managers:
                    if feed in m.pull_feeds and m.price_error is None:
                        log.warning("gearbox.price_update_failed", protocol=self.name, feed=feed, reason=why)
                        m.price_error = why

    # ---- valuation ---------------------------------------------------------------------------
    def _account(self, m: ManagerState, st: AccountState) -> gm.Account:
        assert st.debt is not None and m.fees is not None
        holdings = {t: gm.Holding(t, st.balances.get(t, 0), m.price(t), m.lts[t],
                                  None if t == m.underlying else st.quotas.get(t, 0))
                    for t in m.tokens}
        return gm.Account(st.debt, holdings, m.underlying, m.fees, m.min_debt)

    def _row(self, ca: str, m: ManagerState, st: AccountState) -> AccountView:
        held = "+".join(m.symbols[t] for t in m.tokens[1:] if st.balances.get(t)) or "-"
        return AccountView(protocol=self.name, account=ca, label=f"{held}/{m.symbols[m.underlying]}",
                           health=st.twv_usd / st.total_debt_usd if st.total_debt_usd else None,
                           debt_usd=st.total_debt_usd,
                           liquidatable=st.liquidatable or st.twv_usd < st.total_debt_usd,
                           status=Skip(SkipCode.NOT_LIQUIDATABLE, "healthy"))

    # ---- planning ----------------------------------------------------------------------------
    def assess(self, budget: Budget) -> Assessment:
        out = Assessment()
        for ca, st in self.accounts.items():
            m = self.managers[st.cm]
            if st.block < 0 and m.price_error and st.debt is not None and st.debt.debt:
                # Unreadable without the updates (e.g. the on-chain Pyth price is too old): say why.
                out.views.append(AccountView(protocol=self.name, account=ca, label="?", health=None, debt_usd=0,
                                             liquidatable=False,
                                             status=Skip(SkipCode.PRICE_UPDATE_FAILED, m.price_error)))
                continue
            if st.block < 0 or st.debt is None or st.debt.debt == 0:
                continue  # unread, or already liquidated / repaid (the account stays listed with debt 0)
            row = self._row(ca, m, st)
            view, plan = self._plan(ca, m, st, row, budget) if row.liquidatable else (row, None)
            out.views.append(view)
            out.plans += [plan] if plan else []
        return out

    def replan(self, plan: Plan, budget: Budget) -> Plan | Skip:
        st = self.accounts.get(plan.account)
        if st is None or st.block < 0 or st.debt is None or st.debt.debt == 0:
            return Skip(SkipCode.NOTHING_LEFT, "account no longer open")
        m = self.managers[st.cm]
        view, new = self._plan(plan.account, m, st, self._row(plan.account, m, st), budget)
        return new or view.skip or Skip(SkipCode.NOTHING_LEFT, "nothing left to plan with")

    def _plan(self, ca: str, m: ManagerState, st: AccountState, row: AccountView,
              budget: Budget) -> tuple[AccountView, Plan | None]:
        def skip(code: SkipCode, message: str) -> tuple[AccountView, None]:
            return replace(row, status=Skip(code, message)), None

        if m.paused:
            return skip(SkipCode.PAUSED, "credit facade is paused")
        if m.price_error:
            return skip(SkipCode.PRICE_UPDATE_FAILED, m.price_error)
        acc = self._account(m, st)
        twv = acc.twv_usd()
        if twv != st.twv_usd:
            # A token this module does not value as the manager does (e.g. a phantom token).
            return skip(SkipCode.MATHS_MISMATCH,
                        f"local valuation disagrees with calcDebtAndCollateral (twvUSD {twv} vs {st.twv_usd})")
        inventory = self._inventory(ca, m, st, row, acc, budget)
        quotes = self.quotes.get(ca, {})
        chosen = self._flash(ca, m, st, row, acc, quotes) if self.flash else inventory
        modes = self._modes(m, inventory, quotes) if quotes or self.flash else None
        if isinstance(chosen, Skip):
            return replace(row, status=chosen, modes=modes), None
        return replace(row, label=chosen.label, status=Planned(chosen), modes=modes), chosen

    def _loss_skip(self, st: AccountState) -> Skip | None:
        if st.loss_ok is False:
            return Skip(SkipCode.LOSS_POLICY, f"bad debt: the loss policy refuses {self.caller} a liquidation "
                                              "with loss (isLiquidatableWithLoss is false)")
        return None

    def _full_possible(self, st: AccountState, acc: gm.Account) -> gm.Full | None:
        if not self.cfg.full_liquidation or st.loss_ok is False:
            return None
        full = gm.full_liquidation(acc, st.total_value)
        return full if full.withdrawn else None

    def _inventory(self, ca: str, m: ManagerState, st: AccountState, row: AccountView, acc: gm.Account,
                   budget: Budget) -> Plan | Skip:
        """The wallet's plan: the more profitable (at the oracle's prices) of the best partial
        liquidation it can pay and the full liquidation if it can pay that."""
        margin = self.cfg.target_hf_margin_bps
        wallet = budget.get(m.underlying, 0)
        partial = gm.best_partial(acc, wallet, margin)
        whole = gm.best_partial(acc, UNLIMITED, margin)
        full = self._full_possible(st, acc)
        options: list[Plan] = []
        if partial is not None:
            options.append(self._partial_plan(ca, m, st, row, partial))
        if full is not None and wallet >= full.add:
            options.append(self._full_plan(ca, m, st, row, full))
        # What the most profitable liquidation would need from the wallet.
        wanted = max([x for x in ((whole.profit_usd, whole.amount) if whole else None,
                                  (full.profit_usd, full.add) if full else None) if x], default=None)
        if not options:
            usym = m.symbols[m.underlying]
            if wanted is not None:
                return no_inventory(m.underlying, wallet, wanted[1], m.token_price(m.underlying),
                                    "too little for a partial liquidation that restores HF >= 1"
                                    + (" or the full liquidation" if full else ""))
            if gm.best_partial(acc, UNLIMITED, 0) is not None:
                return Skip(SkipCode.NO_VALID_AMOUNT, f"no partial liquidation leaves HF >= 1 + {margin} bps")
            loss = self._loss_skip(st)
            if loss is not None:
                return loss
            if not self.cfg.full_liquidation:
                return Skip(SkipCode.FULL_ONLY, FULL_ONLY)
            return Skip(SkipCode.NO_COLLATERAL, f"no collateral to take (only {usym} on the account)")
        best = max(options, key=lambda p: p.gross_usd)
        spent = best.spends[0].amount if best.spends else 0
        if wanted is not None and wanted[0] > best.gross_usd and wanted[1] > spent:
            best = replace(best, shortfall=Spend(m.underlying, m.cm, wanted[1]))
        return best

    def _partial_plan(self, ca: str, m: ManagerState, st: AccountState, row: AccountView, plan: gm.Partial) -> Plan:
        usym, tsym = m.symbols[m.underlying], m.symbols[plan.token]
        min_seized = gm.min_seized(plan.seized, self.cfg.seize_slippage_bps)
        tx = TxRequest(m.facade, FACADE.fn("partiallyLiquidateCreditAccount").encode(
            ca, plan.token, plan.amount, min_seized, self.liquidator, list(m.updates)),
            what=f"partiallyLiquidateCreditAccount {ca} repay {plan.amount} {usym} for {plan.seized} {tsym}")
        return Plan(
            protocol=self.name, kind=PlanKind.LIQUIDATION, account=ca, accounts=(ca,), label=f"{tsym}/{usym}",
            txs=(tx,), spends=(Spend(m.underlying, m.cm, plan.amount),),
            expected={m.underlying: -plan.amount, plan.token: plan.seized},
            prices={m.underlying: m.token_price(m.underlying), plan.token: m.token_price(plan.token)},
            gas_estimate=PARTIAL_GAS + PRICE_UPDATE_GAS * len(m.updates), debt_usd=row.debt_usd,
            details=self._partial_details(m, st, plan, min_seized))

    def _partial_details(self, m: ManagerState, st: AccountState, plan: gm.Partial, min_seized: int,
                         flash: fx.FlashReport | None = None) -> GearboxDetails:
        return GearboxDetails(
            credit_manager=m.cm, twv_usd=st.twv_usd, total_debt_usd=st.total_debt_usd, token=plan.token,
            symbol=m.symbols[plan.token], repaid_amount=plan.amount, repaid_debt=plan.repaid, fee=plan.fee,
            seized=plan.seized, min_seized=min_seized, debt_after=plan.debt_after.debt,
            hf_after=round(plan.hf_after, 6), price_updates=len(m.updates),
            execution=(Execution.FLASH if flash else Execution.INVENTORY).value, flash=flash)

    def _full_calls(self, m: ManagerState, add: int, tokens: list[str], to: str) -> list[tuple[str, bytes]]:
        """The facade multicall of a full liquidation: [onDemandPriceUpdates (first, when any),
        addCollateral(underlying, add) (pulled through the credit manager), withdrawCollateral(token,
        max, to) per collateral (all but 1 wei: the account's balance must not increase)]."""
        f = MULTICALL.fn
        calls = [(m.facade, f("onDemandPriceUpdates").encode(list(m.updates)))] if m.updates else []
        if add:
            calls.append((m.facade, f("addCollateral").encode(m.underlying, add)))
        calls += [(m.facade, f("withdrawCollateral").encode(t, UINT_MAX, to)) for t in tokens]
        return calls

    def _full_details(self, m: ManagerState, st: AccountState, full: gm.Full,
                      flash: fx.FlashReport | None = None) -> GearboxFullDetails:
        return GearboxFullDetails(
            credit_manager=m.cm, twv_usd=st.twv_usd, total_debt_usd=st.total_debt_usd, total_value=full.total_value,
            total_funds=full.total_funds, amount_to_pool=full.amount_to_pool, loss=full.loss, bad_debt=full.bad_debt,
            added=full.add, returned=full.returned, withdrawn={m.symbols[t]: a for t, a in full.withdrawn.items()},
            price_updates=len(m.updates), execution=(Execution.FLASH if flash else Execution.INVENTORY).value,
            flash=flash)

    def _full_label(self, m: ManagerState, tokens: list[str]) -> str:
        return f"full {'+'.join(m.symbols[t] for t in tokens)}/{m.symbols[m.underlying]}"

    def _full_plan(self, ca: str, m: ManagerState, st: AccountState, row: AccountView, full: gm.Full) -> Plan:
        """liquidateCreditAccount from the wallet: it adds the underlying, takes every collateral."""
        tokens = list(full.withdrawn)
        calls = self._full_calls(m, full.add, tokens, self.liquidator)
        tx = TxRequest(m.facade, FACADE.fn("liquidateCreditAccount").encode(ca, self.liquidator, calls, b""),
                       what=f"liquidateCreditAccount {ca} add {full.add} {m.symbols[m.underlying]}")
        expected = {m.underlying: full.returned - full.add, **full.withdrawn}
        return Plan(
            protocol=self.name, kind=PlanKind.LIQUIDATION, account=ca, accounts=(ca,),
            label=self._full_label(m, tokens),
            txs=(tx,), spends=(Spend(m.underlying, m.cm, full.add),) if full.add else (), expected=expected,
            prices={t: m.token_price(t) for t in expected},
            gas_estimate=gf.FULL_GAS + gf.FULL_GAS_PER_TOKEN * len(tokens) + PRICE_UPDATE_GAS * len(m.updates),
            debt_usd=row.debt_usd, details=self._full_details(m, st, full))

    def _flash(self, ca: str, m: ManagerState, st: AccountState, row: AccountView, acc: gm.Account,
               quotes: dict[tuple[str, str], Solution | Unsolved]) -> Plan | Skip:
        """Through the executor: the partial liquidation or the full one, whichever the quotes say
        leaves more underlying."""
        assert self.swaps is not None and self.cfg.executor
        price = self._price_of(m)
        good = {k: q for k, q in quotes.items() if isinstance(q, Solution) and q.profit > 0}
        if not good:
            loss = self._loss_skip(st)
            if not quotes:
                if loss is not None:
                    return loss
                if gm.best_partial(acc, UNLIMITED, 0) is not None:
                    return Skip(SkipCode.NO_VALID_AMOUNT,
                                f"no partial liquidation leaves HF >= 1 + {self.cfg.target_hf_margin_bps} bps")
                return Skip(SkipCode.FULL_ONLY, FULL_ONLY) if not self.cfg.full_liquidation else Skip(
                    SkipCode.NO_COLLATERAL, "no collateral to take")
            _, q = max(quotes.items(), key=lambda kv: kv[1].profit if isinstance(kv[1], Solution) else -(2**255))
            out = fx.skip_of(q, price, self.swaps, m.underlying)
            assert out is not None
            return out
        (kind, token), sol = max(good.items(), key=lambda kv: kv[1].profit)
        bps = self.swaps.cfg.slippage_bps
        report = fx.report(sol, self.swaps, m.underlying, price)
        swaps = fx.executor_swaps(sol, self.swaps.cfg.router, bps)
        profit = fx.profit_arg(sol, m.underlying, bps)
        usym = m.symbols[m.underlying]
        if kind == "partial":
            plan = gm.simulate_partial(acc, token, sol.candidate.size)
            min_seized = gm.min_seized(plan.seized, self.cfg.seize_slippage_bps)
            (swap,) = swaps
            data = gf.partial_calldata(sol, m.facade, m.cm, m.underlying, ca, token, min_seized, m.updates, swap,
                                       profit)
            label = f"{m.symbols[token]}/{usym}"
            details: Details = self._partial_details(m, st, plan, min_seized, report)
            gas = gf.PARTIAL_FLASH_GAS
            what = f"liquidateGearboxPartial {ca} repay {plan.amount} {usym} via {report.route}"
        else:
            full = gm.full_liquidation(acc, st.total_value, min_add=1)
            data = gf.full_calldata(sol, m.facade, m.cm, m.underlying, ca, m.updates, swaps, profit)
            tokens = [s.token for s in sol.candidate.sales]
            label = self._full_label(m, tokens)
            details = self._full_details(m, st, full, report)
            gas = gf.FULL_FLASH_GAS + gf.FULL_FLASH_GAS_PER_TOKEN * len(tokens)
            what = f"liquidateGearboxFull {ca} add {full.add} {usym} via {report.route}"
        tx = TxRequest(self.cfg.executor, data, what=what)
        return Plan(protocol=self.name, kind=PlanKind.LIQUIDATION, account=ca, accounts=(ca,), label=label,
                    txs=(tx,), expected={m.underlying: sol.profit}, prices={m.underlying: m.token_price(m.underlying)},
                    gas_estimate=gas + PRICE_UPDATE_GAS * len(m.updates), debt_usd=row.debt_usd, details=details,
                    expected_from_simulation=True)

    @staticmethod
    def _price_of(m: ManagerState) -> Callable[[str], TokenPrice | None]:
        return lambda t: m.token_price(t) if t in m.prices else None

    def _modes(self, m: ManagerState, inventory: Plan | Skip,
               quotes: dict[tuple[str, str], Solution | Unsolved]) -> Modes:
        """Both modes' figures for scan: the wallet's plan, and the best quoted flash liquidation."""
        best = max(quotes.items(), key=lambda kv: kv[1].profit if isinstance(kv[1], Solution) else -(2**255),
                   default=None)
        gas = 0
        if best is not None:
            (kind, _), q = best
            n = len(q.candidate.sales) if isinstance(q, Solution) else 1
            gas = (gf.PARTIAL_FLASH_GAS if kind == "partial" else gf.FULL_FLASH_GAS + gf.FULL_FLASH_GAS_PER_TOKEN * n)
        return fx.modes(self.cfg.execution, inventory_usd=inventory.gross_usd if isinstance(inventory, Plan) else None,
                        inventory_gas=inventory.gas_estimate if isinstance(inventory, Plan) else PARTIAL_GAS,
                        flash=best[1] if best else None, flash_gas=gas + PRICE_UPDATE_GAS * len(m.updates),
                        profit_price=m.token_price(m.underlying), swaps=self.swaps, price=self._price_of(m),
                        profit_token=m.underlying)

    # ---- shadow mode and fork rehearsals ----------------------------------------------------------
    async def liquidation_events(self, from_block: int, to_block: int) -> list[ObservedLiquidation]:
        """The facades' PartiallyLiquidateCreditAccount (value = collateral seized minus the
        underlying paid, repaidDebt + fee, at the oracle's prices of the last refresh) and
        LiquidateCreditAccount (a full liquidation: its event does not tell the value)."""
        assert self.chain
        partial, full = FACADE.event("PartiallyLiquidateCreditAccount"), FACADE.event("LiquidateCreditAccount")
        by_facade = {m.facade: m for m in self.managers.values() if m.facade}
        if not by_facade:
            return []
        out = []
        for lg in await self.chain.get_logs(list(by_facade), [[partial.topic, full.topic]], from_block, to_block):
            m = by_facade[lg.address]
            usym = m.symbols.get(m.underlying, "?")
            if lg.topics[0] == partial.topic:
                e = partial.decode(lg.topics, lg.data)
                t = e["token"]
                known = t in m.prices and m.underlying in m.prices
                value = (m.token_price(t).usd(e["seizedCollateral"])
                         - m.token_price(m.underlying).usd(e["repaidDebt"] + e["fee"])) if known else None
                label = f"{m.symbols.get(t, '?')}/{usym}"
            else:
                e = full.decode(lg.topics, lg.data)
                value, label = None, f"full/{usym}"
            out.append(ObservedLiquidation(self.name, PlanKind.LIQUIDATION, e["creditAccount"], e["liquidator"],
                                           lg.block_number, lg.tx_hash, lg.log_index, value, label))
        return out

    async def price_feeds(self) -> dict[str, set[str]]:
        """Each collateral token's main feed in the manager's PriceOracleV3 (pull feeds left out)."""
        out: dict[str, set[str]] = {}
        for m in self.managers.values():
            for t, f in m.feeds.items():
                if f not in m.pull_feeds:
                    out.setdefault(t, set()).add(f)
        return out

    async def pyth_feeds(self) -> set[PythFeedRef]:
        """Each collateral token's Pyth pull feed: PythPriceFeed prices with the price Pyth stores
        (getPriceUnsafe), which its updatePrice refreshes from signed updates."""
        assert self.chain
        pairs = [(t, f, i) for m in self.managers.values() for t, f in m.feeds.items()
                 if (i := m.pull_feeds.get(f)) is not None]
        fn = FEED.fn("pyth")
        pyths = await self.chain.multicall([Call(f, fn.encode(), fn.decode) for _, f, _ in pairs])
        return {PythFeedRef(t, p, i, True) for (t, _, i), p in zip(pairs, pyths) if not isinstance(p, CallFailed)}
