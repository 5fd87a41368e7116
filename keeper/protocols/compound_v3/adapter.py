"""Compound III (Comet): accounts from Comet's logs, their state and the market's through Multicall3,
plans that absorb() liquidatable accounts in batches and buy the freed collateral at the store-front
discount (buyCollateral), the only way an absorber earns anything on Comet.

Values are at Comet's own prices (getPrice: 8 decimals, USD on USD-quoted markets such as cUSDCv3;
markets whose feeds are quoted in another unit, e.g. ETH on cWETHv3, value in that unit)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import structlog
from eth_utils import to_checksum_address

from keeper.abi import load
from keeper.chain.client import Chain
from keeper.chain.multicall import Call, CallFailed
from keeper.chain.sender import TxRequest
from keeper.errors import StartupError
from keeper.protocols.base import (
    AccountView,
    Adapter,
    Assessment,
    Budget,
    Covered,
    Details,
    Execution,
    Modes,
    ObservedLiquidation,
    Plan,
    PlanKind,
    Planned,
    Services,
    Skip,
    SkipCode,
    Spend,
    TokenPrice,
    batch_kind,
    no_inventory,
)
from keeper.protocols.compound_v3 import flash as cf
from keeper.protocols.compound_v3 import maths as cm
from keeper.protocols.compound_v3.config import CompoundV3Config
from keeper.protocols.compound_v3.mirror import CometMirror
from keeper.protocols.plan import amount_text
from keeper.swap import execution as fx
from keeper.swap.search import Problem, Solution, Unsolved, solve

log = structlog.get_logger()
COMET = load("compound_v3/CometMain")
ERC20 = load("ERC20")

# Estimates before simulation; the engine simulates every transaction and counts the real gas
# (the stand-in on Anvil: absorb of 3 accounts ~206k, of 1 ~97k; buyCollateral ~106-126k).
ABSORB_GAS = 60_000
ABSORB_GAS_PER_ACCOUNT = 70_000
BUY_GAS = 125_000
# Each block quoteCollateral(asset, this many whole base tokens) is read and compared with the local
# maths: a Comet version with other store-front maths is not bought from.
QUOTE_CHECK_UNITS = 1_000_000
# Read every block with the base price (getPrice(baseTokenPriceFeed)), in this order.
MARKET_VIEWS = ("getReserves", "targetReserves", "isAbsorbPaused", "isBuyPaused", "numAssets",
                "storeFrontPriceFactor")
NOT_FOR_SALE = "reserves at or above targetReserves: collateral not for sale"
HEALTHY = Skip(SkipCode.NOT_LIQUIDATABLE, "healthy")
ACCRUAL_NOTE = ("liquidatable once interest accrues (isLiquidatable reads the stored borrow index; "
                "absorb accrues first)")
# Where the account is among each discovery event's topics (1-based; topic 0 is the signature).
ACCOUNT_TOPICS = {"Withdraw": (1,), "SupplyCollateral": (2,), "WithdrawCollateral": (1,),
                  "TransferCollateral": (1, 2), "AbsorbDebt": (2,)}


def _decimals(scale: int) -> int:
    d = len(str(scale)) - 1
    if 10**d != scale:
        raise StartupError(f"scale {scale} is not a power of ten")
    return d


@dataclass
class AssetState:
    """One collateral: getAssetInfo(i) plus what each block reads."""
    offset: int
    asset: str
    feed: str
    scale: int
    liquidate_cf: int
    liquidation_factor: int
    symbol: str = "?"
    price: int = 0
    reserves: int = 0  # getCollateralReserves: absorbed and not yet bought
    quote_ok: bool = True  # quoteCollateral on chain agrees with compound_v3.maths


@dataclass
class AccountState:
    debt: int = 0  # borrowBalanceOf (accrued to the block)
    collateral: dict[str, int] = field(default_factory=dict)
    comet_liquidatable: bool = False  # isLiquidatable (stored index)
    block: int = -1  # last successful read


@dataclass(frozen=True)
class Buy:
    asset: AssetState
    base_amount: int
    collateral: int  # the quote
    min_amount: int


@dataclass(frozen=True)
class BuyDetails:
    asset: str
    symbol: str
    base_amount: int
    collateral: int  # the quote
    min_amount: int


@dataclass(frozen=True)
class AbsorbDetails(Details):
    buys: tuple[BuyDetails, ...]
    freed: dict[str, int]  # symbol -> collateral the absorb frees
    accrual_only: tuple[str, ...]  # accounts liquidatable only once interest accrues
    reserves: int
    target_reserves: int
    absorb_only: str | None = None  # why nothing is bought (absorb_without_profit)
    execution: str = Execution.INVENTORY.value
    flash: tuple[fx.FlashReport, ...] = ()  # flash mode: one executor call per collateral bought


@dataclass(frozen=True)
class BuyOnlyDetails(Details):
    buys: tuple[BuyDetails, ...]
    reserves: int
    target_reserves: int
    execution: str = Execution.INVENTORY.value
    flash: tuple[fx.FlashReport, ...] = ()


class CompoundV3Adapter(Adapter[CompoundV3Config]):
    def __init__(self, cfg: CompoundV3Config, services: Services):
        liquidator = services.liquidator
        self.cfg = cfg
        self.name = cfg.name
        self.liquidator = liquidator
        self.comet = cfg.comet
        self.base = ""
        self.base_feed = ""
        self.base_scale = 1
        self.base_symbol = "?"
        self.base_price = 0
        self.store_front_price_factor = 0
        self.assets: dict[str, AssetState] = {}
        self.accounts: dict[str, AccountState] = {}
        self.reserves = 0
        self.target_reserves = 0
        self.absorb_paused = False
        self.buy_paused = False
        self.chain: Chain | None = None
        self.mirror: CometMirror | None = None
        self.mirror_mismatches = 0  # candidates whose on-chain state differed from the mirror's
        self.swaps = services.swaps
        self.flash = cfg.execution == Execution.FLASH
        # (accounts absorbed first, or () for reserves already absorbed, asset) -> this block's flash
        # solution of buying that collateral (flash mode, or a scan with [swap])
        self.quotes: dict[tuple[tuple[str, ...], str], Solution | Unsolved] = {}

    def contracts(self) -> dict[str, str]:
        return {"Comet": self.comet} | ({"LiquidationExecutor": self.cfg.executor}
                                        if self.flash and self.cfg.executor else {})

    def tokens(self) -> set[str]:
        return {self.base} if self.base else set()

    def spenders(self) -> set[tuple[str, str]]:
        """Inventory mode buys collateral with the base token from the wallet: Comet pulls it."""
        return {(self.base, self.comet)} if self.base and not self.flash else set()

    # ---- start-up ---------------------------------------------------------------------------
    async def start(self, chain: Chain) -> None:
        self.chain = chain
        if not await chain.get_code(self.comet):
            raise StartupError(f"{self.name}: no contract at comet {self.comet}")
        names = ("baseToken", "baseTokenPriceFeed", "baseScale")
        try:
            res = await chain.multicall_strict([Call(self.comet, COMET.fn(n).encode(), COMET.fn(n).decode)
                                                for n in names])
        except Exception as e:
            raise StartupError(f"{self.name}: {self.comet} does not answer as a Comet: {e}") from None
        self.base, self.base_feed, self.base_scale = res
        _decimals(self.base_scale)
        await self._load_assets("latest")
        if self.flash:
            assert self.swaps is not None and self.cfg.executor  # the config requires [swap] and executor
            await self.swaps.start()
            await fx.check_executor(chain, self.name, self.cfg.executor, self.liquidator)

    async def _load_assets(self, block: int | str) -> None:
        """storeFrontPriceFactor and every collateral's AssetInfo (again when governance adds one)."""
        assert self.chain
        f = COMET.fn
        n, self.store_front_price_factor = await self.chain.multicall_strict(
            [Call(self.comet, f(k).encode(), f(k).decode) for k in ("numAssets", "storeFrontPriceFactor")], block)
        infos = await self.chain.multicall_strict(
            [Call(self.comet, f("getAssetInfo").encode(i), f("getAssetInfo").decode) for i in range(n)], block)
        known = {a.asset: a for a in self.assets.values()}
        self.assets = {}
        for offset, asset, feed, scale, _bcf, lcf, lf, _cap in infos:
            _decimals(scale)
            old = known.get(asset)
            self.assets[asset] = AssetState(offset, asset, feed, scale, lcf, lf, symbol=old.symbol if old else "?")
        todo = [t for t in (self.base, *self.assets)
                if (self.base_symbol if t == self.base else self.assets[t].symbol) == "?"]
        sym = ERC20.fn("symbol")
        syms = await self.chain.multicall([Call(t, sym.encode(), sym.decode) for t in todo], block)
        for t, s in zip(todo, syms):
            s = s if isinstance(s, str) else t[:8]
            if t == self.base:
                self.base_symbol = s
            else:
                self.assets[t].symbol = s

    # ---- discovery ---------------------------------------------------------------------------
    async def discover(self, from_block: int, to_block: int) -> int:
        assert self.chain
        where = {COMET.event(n).topic: idx for n, idx in ACCOUNT_TOPICS.items()}
        logs = await self.chain.get_logs(self.comet, [list(where)], from_block, to_block)
        new = 0
        for lg in logs:
            for i in where.get(lg.topics[0], ()):
                if len(lg.topics) <= i:
                    continue
                account = to_checksum_address("0x" + lg.topics[i][-40:])
                if account not in self.accounts:
                    self.accounts[account] = AccountState()
                    new += 1
        return new

    # ---- mirror ------------------------------------------------------------------------------
    def account_keys(self) -> set[str]:
        return set(self.accounts)

    def restore_accounts(self, keys: set[str]) -> bool:
        for a in keys:
            self.accounts.setdefault(a, AccountState())
        return True

    def forget_state(self) -> None:
        self.mirror = None  # every account is read again at the next block

    async def refresh(self, block: int, *, all_details: bool = False) -> None:
        assert self.chain
        if not self.cfg.incremental or all_details:
            await self._refresh_full(block, all_details=all_details)
            return
        m = self.mirror
        assets = list(self.assets)
        await self._refresh_full(block, accounts=[])  # the market: prices, factors, reserves, pauses
        if m is None or list(self.assets) != assets:
            m = self.mirror = CometMirror(self.comet)  # a new collateral: every account is read again
        await m.advance(self.chain, block, self.accounts, list(self.assets))
        candidates = []
        for u, st in self.accounts.items():
            acc = m.accounts.get(u)
            if acc is None:
                continue
            st.debt = m.debt(u)
            st.collateral = dict(acc.collateral)
            st.comet_liquidatable = acc.principal < 0 and cm.liquidity(
                m.stored_debt(u), self.base_price, self.base_scale, self._holdings(st)) < 0
            st.block = block
            if st.debt and (st.comet_liquidatable or self._locally_liquidatable(st)):
                candidates.append(u)
        if candidates:  # confirmed on chain before anything is planned
            local = {u: (self.accounts[u].debt, self.accounts[u].comet_liquidatable) for u in candidates}
            await self._refresh_full(block, accounts=candidates)
            for u, mine in local.items():
                st = self.accounts[u]
                if mine != (st.debt, st.comet_liquidatable):
                    self.mirror_mismatches += 1
                    log.warning("comet.mirror_mismatch", protocol=self.name, account=u, block=block,
                                local=mine, chain=(st.debt, st.comet_liquidatable))

    async def _refresh_full(self, block: int, *, all_details: bool = False, _reloaded: bool = False,
                            accounts: list[str] | None = None) -> None:
        """The market's views and prices, and ``accounts`` (default: every one) read on chain."""
        assert self.chain
        assets = list(self.assets.values())
        accounts = list(self.accounts) if accounts is None else accounts
        f = COMET.fn
        c = self.comet
        probe = QUOTE_CHECK_UNITS * self.base_scale
        calls = [Call(c, f(k).encode(), f(k).decode) for k in MARKET_VIEWS]
        calls.insert(0, Call(c, f("getPrice").encode(self.base_feed), f("getPrice").decode))
        for a in assets:
            calls += [Call(c, f("getAssetInfo").encode(a.offset), f("getAssetInfo").decode),
                      Call(c, f("getPrice").encode(a.feed), f("getPrice").decode),
                      Call(c, f("getCollateralReserves").encode(a.asset), f("getCollateralReserves").decode),
                      Call(c, f("quoteCollateral").encode(a.asset, probe), f("quoteCollateral").decode)]
        market_calls = len(calls)
        for u in accounts:
            calls += [Call(c, f("isLiquidatable").encode(u), f("isLiquidatable").decode),
                      Call(c, f("borrowBalanceOf").encode(u), f("borrowBalanceOf").decode)]
            calls += [Call(c, f("collateralBalanceOf").encode(u, a.asset), f("collateralBalanceOf").decode)
                      for a in assets]
        res = await self.chain.multicall(calls, block)
        failed = [i for i, r in enumerate(res[:market_calls]) if isinstance(r, CallFailed)]
        if failed:
            raise RuntimeError(f"{self.name}: Comet market reads failed at block {block}: "
                               f"{[calls[i].data[:4].hex() for i in failed]}")
        m = 1 + len(MARKET_VIEWS)
        (self.base_price, self.reserves, self.target_reserves, self.absorb_paused, self.buy_paused,
         num_assets, self.store_front_price_factor) = res[:m]
        infos = res[m:market_calls:4]
        if num_assets != len(assets) or any(info[1] != a.asset for info, a in zip(infos, assets)):
            if _reloaded:
                raise RuntimeError(f"{self.name}: Comet's asset list changed twice at block {block}")
            log.info("comet.assets_changed", protocol=self.name, num_assets=num_assets)
            await self._load_assets(block)
            return await self._refresh_full(block, all_details=all_details, _reloaded=True, accounts=accounts)
        for i, a in enumerate(assets):
            info, a.price, a.reserves, onchain_quote = res[m + 4 * i: m + 4 * (i + 1)]
            # Governance may change factors (and feeds: the price above is then one block old, and
            # the quote check below fails for that block).
            a.feed, a.liquidate_cf, a.liquidation_factor = info[2], info[5], info[6]
            ok = self._store_front(a).quote(probe) == onchain_quote
            if ok != a.quote_ok:
                (log.info if ok else log.warning)("comet.quote_check", protocol=self.name, asset=a.symbol,
                                                  agrees=ok, onchain=onchain_quote)
            a.quote_ok = ok
        width = 2 + len(assets)
        for j, u in enumerate(accounts):
            row = res[market_calls + j * width: market_calls + (j + 1) * width]
            if any(isinstance(x, CallFailed) for x in row):
                log.warning("comet.account_read_failed", protocol=self.name, account=u)
                continue
            st = self.accounts[u]
            st.comet_liquidatable, st.debt = row[0], row[1]
            st.collateral = {a.asset: bal for a, bal in zip(assets, row[2:]) if bal}
            st.block = block
        await self._quote(block, all_details)

    async def _quote(self, block: int, all_details: bool) -> None:
        """Flash mode (or a scan with [swap]): for each absorb batch and each collateral it frees (and
        each reserve already for sale), the base amount that pays most once the collateral bought is
        sold on Uniswap V3."""
        self.quotes = {}
        if self.swaps is None or not (self.flash or all_details) or self.buy_paused:
            return
        problems: list[Problem] = []
        batches = [tuple(g) for g in self._groups(self._liquidatable())] if not self.absorb_paused else []
        for batch in [*batches, ()]:
            freed = self._freed(list(batch)) if batch else {a.asset: a.reserves for a in self.assets.values()}
            for a in self._for_sale(freed):
                p = cf.problem((batch, a.asset), self.base, a.asset, self._store_front(a), freed[a.asset])
                if p is not None:
                    problems.append(p)
        if problems:
            self.quotes = await solve(self.swaps, problems, block)  # type: ignore[assignment]

    def _for_sale(self, freed: dict[str, int]) -> list[AssetState]:
        """The collateral buyCollateral would sell of ``freed``, best discount first, while the buys
        before each could not have lifted reserves to the target (each buy checks reserves <
        targetReserves before taking its base in)."""
        if self.reserves >= self.target_reserves:
            return []
        order = sorted((self.assets[a] for a, amt in freed.items() if amt > 0 and self.assets[a].quote_ok),
                       key=lambda a: self._store_front(a).discount_factor, reverse=True)
        out, reserves = [], self.reserves
        for a in order:
            if reserves >= self.target_reserves:
                break
            out.append(a)
            reserves += self._store_front(a).max_base_for(freed[a.asset])
        return out

    def _liquidatable(self) -> list[str]:
        return [u for u, st in self.accounts.items()
                if st.block >= 0 and st.debt and self._row(u, st).liquidatable]

    # ---- valuation -----------------------------------------------------------------------------
    def _store_front(self, a: AssetState) -> cm.StoreFront:
        return cm.StoreFront(a.price, self.base_price, a.scale, self.base_scale, a.liquidation_factor,
                             self.store_front_price_factor)

    def _holdings(self, st: AccountState) -> list[cm.Holding]:
        return [cm.Holding(bal, self.assets[a].price, self.assets[a].scale, self.assets[a].liquidate_cf)
                for a, bal in st.collateral.items()]

    def _price(self, token: str) -> TokenPrice:
        if token == self.base:
            return TokenPrice(self.base_price, _decimals(self.base_scale), self.base_symbol)
        a = self.assets[token]
        return TokenPrice(a.price, _decimals(a.scale), a.symbol)

    def _locally_liquidatable(self, st: AccountState) -> bool:
        """Comet's check with the accrued debt (what absorb() sees after accruing)."""
        return cm.liquidity(st.debt, self.base_price, self.base_scale, self._holdings(st)) < 0

    def _row(self, account: str, st: AccountState, status: Skip | Covered | Planned = HEALTHY) -> AccountView:
        """The account as the scan table shows it."""
        _, weighted = cm.collateral_value(self._holdings(st))
        debt_usd = cm.mul_price(st.debt, self.base_price, self.base_scale)
        held = "+".join(self.assets[a].symbol for a in st.collateral) or "-"
        return AccountView(protocol=self.name, account=account, label=f"{held}/{self.base_symbol}",
                           health=weighted / debt_usd if debt_usd else None, debt_usd=debt_usd,
                           liquidatable=st.comet_liquidatable or self._locally_liquidatable(st), status=status)

    # ---- planning ------------------------------------------------------------------------------
    def assess(self, budget: Budget) -> Assessment:
        out = Assessment()
        liquidatable: list[str] = []
        for u, st in self.accounts.items():
            if st.block < 0 or st.debt == 0:
                continue
            row = self._row(u, st)
            if row.liquidatable:
                liquidatable.append(u)
            else:
                out.views.append(row)
        out.add(self._batches(liquidatable, budget))
        buy = self._buy_only(budget)
        if buy is not None:
            out.plans.append(buy)
        return out

    def replan(self, plan: Plan, budget: Budget) -> Plan | Skip:
        if plan.kind is PlanKind.BUY:
            return self._buy_only(budget) or Skip(SkipCode.NOTHING_LEFT, "nothing left to buy")
        again = self._plan_batch(list(plan.accounts), budget)
        return again.plans[0] if again.plans else again.views[0].skip or Skip(SkipCode.NOTHING_LEFT, "nothing left")

    def _freed_value(self, u: str) -> int:
        return cm.collateral_value(self._holdings(self.accounts[u]))[0]

    def _batches(self, liquidatable: list[str], budget: Budget) -> Assessment:
        """Accounts Comet already reports liquidatable, then those that are only once interest is
        accrued (kept apart: if the local check were wrong, only their batch would revert), each
        group by collateral value, in absorb() calls of at most max_absorb_batch accounts."""
        if self.absorb_paused:
            paused = Skip(SkipCode.PAUSED, "absorb is paused on this Comet")
            return Assessment([self._row(u, self.accounts[u], paused) for u in liquidatable])
        out = Assessment()
        for u in liquidatable:
            st = self.accounts[u]
            if not st.collateral and not self.cfg.absorb_without_profit:
                out.views.append(self._row(u, st, Skip(
                    SkipCode.NO_COLLATERAL, "no collateral left to buy (bad debt): absorbing it earns nothing")))
        for batch in self._groups(liquidatable):
            out.add(self._plan_batch(batch, budget))
        return out

    def _groups(self, liquidatable: list[str]) -> list[list[str]]:
        """The absorb batches: accounts Comet reports liquidatable, then those that are only once
        interest accrues, each group by collateral value, at most max_absorb_batch a batch (accounts
        without collateral only with absorb_without_profit)."""
        groups: list[list[str]] = [[], []]
        for u in sorted(liquidatable, key=self._freed_value, reverse=True):
            st = self.accounts[u]
            if st.collateral or self.cfg.absorb_without_profit:
                groups[0 if st.comet_liquidatable else 1].append(u)
        n = self.cfg.max_absorb_batch
        return [g[i:i + n] for g in groups for i in range(0, len(g), n)]

    def _freed(self, accounts: list[str]) -> dict[str, int]:
        freed: dict[str, int] = {}
        for u in accounts:
            for a, bal in self.accounts[u].collateral.items():
                freed[a] = freed.get(a, 0) + bal
        return freed

    def _buys(self, freed: dict[str, int], budget: Budget) -> tuple[list[Buy], Skip | None]:
        """buyCollateral calls for ``freed`` collateral (asset -> amount for sale after the absorb),
        best discount first, within the wallet's base balance; or why there are none."""
        if self.buy_paused:
            return [], Skip(SkipCode.PAUSED, "buyCollateral is paused: collateral not for sale")
        if self.reserves >= self.target_reserves:
            return [], Skip(SkipCode.NOT_FOR_SALE, NOT_FOR_SALE)
        wallet = budget.get(self.base, 0)
        if wallet <= 0:
            need = sum(self._store_front(self.assets[a]).max_base_for(amt) for a, amt in freed.items() if amt > 0)
            return [], no_inventory(self.base, 0, need, self._price(self.base),
                                    "nothing to buy the collateral with: absorbing would earn nothing")
        order = sorted((self.assets[a] for a, amt in freed.items() if amt > 0),
                       key=lambda a: self._store_front(a).discount_factor, reverse=True)
        if not order:
            return [], Skip(SkipCode.NO_COLLATERAL, "no collateral to buy: absorbing would earn nothing")
        buys: list[Buy] = []
        reasons: list[str] = []
        # Each buyCollateral checks reserves < targetReserves before taking the base in; every buy
        # raises reserves by its base amount (the absorb only lowers them), so stop planning buys
        # once the earlier ones could have lifted reserves to the target.
        reserves = self.reserves
        for a in order:
            if wallet == 0 or reserves >= self.target_reserves:
                break
            if not a.quote_ok:
                reasons.append(f"quoteCollateral of {a.symbol} disagrees with Comet's maths: not bought")
                continue
            sf = self._store_front(a)
            base_amount = min(sf.max_base_for(freed[a.asset]), wallet)
            quote = sf.quote(base_amount)
            if base_amount == 0 or quote == 0:
                continue
            buys.append(Buy(a, base_amount, quote, cm.min_amount(quote, self.cfg.buy_slippage_bps)))
            wallet -= base_amount
            reserves += base_amount
        if not buys:
            if reasons:
                return [], Skip(SkipCode.MATHS_MISMATCH, "; ".join(reasons))
            return [], Skip(SkipCode.TOO_SMALL, "collateral too small to buy: absorbing would earn nothing")
        return buys, None

    def _buy_txs(self, buys: list[Buy]) -> list[TxRequest]:
        fn = COMET.fn("buyCollateral")
        return [TxRequest(self.comet, fn.encode(b.asset.asset, b.min_amount, b.base_amount, self.liquidator),
                          what=f"buyCollateral {b.asset.symbol} for {b.base_amount} {self.base_symbol}")
                for b in buys]

    def _priced(self, buys: list[Buy]) -> tuple[dict[str, int], dict[str, TokenPrice], tuple[Spend, ...]]:
        spent = sum(b.base_amount for b in buys)
        if not buys:
            return {}, {}, ()
        expected = {self.base: -spent} | {b.asset.asset: b.collateral for b in buys}
        prices = {t: self._price(t) for t in expected}
        return expected, prices, (Spend(self.base, self.comet, spent),)

    @staticmethod
    def _buy_details(buys: list[Buy]) -> tuple[BuyDetails, ...]:
        return tuple(BuyDetails(b.asset.asset, b.asset.symbol, b.base_amount, b.collateral, b.min_amount)
                     for b in buys)

    def _plan_batch(self, accounts: list[str], budget: Budget) -> Assessment:
        """One absorb and the buys of what it frees, paid from the wallet (inventory) or with flash
        liquidity (flash): the configured mode's, with both modes' figures on the views."""
        freed = self._freed(accounts)
        inventory = self._inventory_batch(accounts, freed, budget)
        key = tuple(accounts)
        if not self.flash and not any(k[0] == key for k in self.quotes):
            return inventory
        modes = self._modes(key, inventory.plans[0] if inventory.plans else None)
        chosen = self._flash_batch(accounts, freed) if self.flash else inventory
        chosen.views = [replace(v, modes=modes) for v in chosen.views]
        return chosen

    def _modes(self, key: tuple[str, ...], inventory: Plan | None) -> Modes:
        """Scan's figures of both modes for the batch ``key`` (() = reserves already for sale)."""
        sols = [(a, q) for (k, a), q in self.quotes.items() if k == key and isinstance(q, Solution) and q.profit > 0]
        notes = [q.message for (k, _), q in self.quotes.items() if k == key and isinstance(q, Unsolved)]
        base = self._price(self.base)
        route = quoted = None
        if sols and self.swaps is not None:
            route = " + ".join(fx.route_label(q, self.swaps) for _, q in sols)
            quoted = " + ".join(f"{fx.sold_text(q, self._price_of)} -> {amount_text(q.out, base, self.base)}"
                                for _, q in sols)
        return Modes(Execution(self.cfg.execution), inventory.gross_usd if inventory else None,
                     inventory.gas_estimate if inventory else BUY_GAS,
                     base.usd(sum(q.profit for _, q in sols)) if sols else None,
                     ABSORB_GAS + ABSORB_GAS_PER_ACCOUNT * len(key) + cf.BUY_FLASH_GAS * max(len(sols), 1),
                     route, quoted, "; ".join(notes) or None)

    def _price_of(self, token: str) -> TokenPrice | None:
        return self._price(token) if token == self.base or token in self.assets else None

    def _flash_txs(self, absorb: tuple[str, ...], sols: list[tuple[AssetState, Solution]]) -> list[TxRequest]:
        """One liquidateCompoundV3 per collateral bought; the first also absorbs ``absorb``."""
        assert self.swaps is not None and self.cfg.executor
        bps = self.swaps.cfg.slippage_bps
        txs = []
        for i, (a, sol) in enumerate(sols):
            (swap,) = fx.executor_swaps(sol, self.swaps.cfg.router, bps)
            (sale,) = sol.candidate.sales
            data = cf.calldata(sol, self.comet, self.base, absorb if i == 0 else (), a.asset,
                               cm.min_amount(sale.amount, self.cfg.buy_slippage_bps), swap,
                               fx.profit_arg(sol, self.base, bps))
            txs.append(TxRequest(self.cfg.executor, data,
                                 what=(f"liquidateCompoundV3 absorb {len(absorb)} + " if i == 0 and absorb else
                                       "liquidateCompoundV3 ")
                                 + f"buy {a.symbol} via {fx.route_label(sol, self.swaps)}"))
        return txs

    def _flash_solutions(self, key: tuple[str, ...], freed: dict[str, int]) -> tuple[list[tuple[AssetState, Solution]],
                                                                                    Skip | None]:
        """The collateral of ``freed`` worth buying with flash liquidity (quoted profit > 0), or why none."""
        assert self.swaps is not None
        if self.buy_paused:
            return [], Skip(SkipCode.PAUSED, "buyCollateral is paused: collateral not for sale")
        if self.reserves >= self.target_reserves:
            return [], Skip(SkipCode.NOT_FOR_SALE, NOT_FOR_SALE)
        sols, skips = [], []
        for a in self._for_sale(freed):
            q = self.quotes.get((key, a.asset))
            skip = fx.skip_of(q, self._price_of, self.swaps, self.base)
            if skip is None and isinstance(q, Solution):
                sols.append((a, q))
            elif skip is not None:
                skips.append(skip)
        if sols:
            return sols, None
        if any(not self.assets[t].quote_ok for t, amt in freed.items() if amt > 0):
            return [], Skip(SkipCode.MATHS_MISMATCH, "quoteCollateral disagrees with Comet's maths: not bought")
        return [], skips[0] if skips else Skip(SkipCode.NO_COLLATERAL, "no collateral to buy")

    def _flash_batch(self, accounts: list[str], freed: dict[str, int]) -> Assessment:
        """The executor absorbs the batch, then buys each collateral with flash liquidity and sells it."""
        key = tuple(accounts)
        sols, why_not = self._flash_solutions(key, freed)
        first = accounts[0]
        lead = self._row(first, self.accounts[first])
        if not sols:
            if not self.cfg.absorb_without_profit:
                return Assessment([self._row(u, self.accounts[u], why_not or Skip(SkipCode.NO_COLLATERAL, "nothing"))
                                   for u in accounts])
            return self._inventory_batch(accounts, freed, {})  # absorb only: no token needed
        assert self.swaps is not None
        accrual_only = [u for u in accounts if not self.accounts[u].comet_liquidatable]
        label = f"absorb {len(accounts)} + buy {'+'.join(a.symbol for a, _ in sols)}"
        profit = sum(q.profit for _, q in sols)
        reports = tuple(fx.report(q, self.swaps, self.base, self._price_of) for _, q in sols)
        details = AbsorbDetails(buys=tuple(BuyDetails(a.asset, a.symbol, q.candidate.size, q.candidate.sales[0].amount,
                                                      cm.min_amount(q.candidate.sales[0].amount,
                                                                    self.cfg.buy_slippage_bps)) for a, q in sols),
                                freed={self.assets[a].symbol: v for a, v in freed.items()},
                                accrual_only=tuple(accrual_only), reserves=self.reserves,
                                target_reserves=self.target_reserves, execution=Execution.FLASH.value, flash=reports)
        plan = Plan(protocol=self.name, kind=batch_kind(accounts), account=first, accounts=key, label=label,
                    txs=tuple(self._flash_txs(key, sols)), expected={self.base: profit},
                    prices={self.base: self._price(self.base)},
                    gas_estimate=ABSORB_GAS + ABSORB_GAS_PER_ACCOUNT * len(accounts) + cf.BUY_FLASH_GAS * len(sols),
                    debt_usd=lead.debt_usd, force=self.cfg.absorb_without_profit, details=details,
                    expected_from_simulation=True)
        lead = replace(lead, label=label, status=Planned(plan, ACCRUAL_NOTE if accrual_only else None))
        covered = [replace(self._row(u, self.accounts[u], Covered(plan, f"absorbed in one batch with {first}")),
                           label=label) for u in accounts[1:]]
        return Assessment([lead, *covered], [plan])

    def _inventory_batch(self, accounts: list[str], freed: dict[str, int], budget: Budget) -> Assessment:
        """One absorb(keeper, accounts) and the buys of what it frees from the wallet; the first
        account leads the plan, the others are covered by it. Skipped views, one per account, when
        buying cannot pay and absorb_without_profit is off."""
        buys, why_not = self._buys(freed, budget)
        if not buys and not self.cfg.absorb_without_profit:
            skip = why_not or Skip(SkipCode.NO_COLLATERAL, "nothing to buy")
            return Assessment([self._row(u, self.accounts[u], skip) for u in accounts])
        first = accounts[0]
        accrual_only = [u for u in accounts if not self.accounts[u].comet_liquidatable]
        label = f"absorb {len(accounts)}" + (f" + buy {'+'.join(b.asset.symbol for b in buys)}" if buys else "")
        absorb = TxRequest(self.comet, COMET.fn("absorb").encode(self.liquidator, accounts),
                           what=f"absorb {len(accounts)} account(s) from {first}")
        expected, prices, spends = self._priced(buys)
        lead = self._row(first, self.accounts[first])
        details = AbsorbDetails(buys=self._buy_details(buys),
                                freed={self.assets[a].symbol: v for a, v in freed.items()},
                                accrual_only=tuple(accrual_only), reserves=self.reserves,
                                target_reserves=self.target_reserves,
                                absorb_only=why_not.message if not buys and why_not else None)
        need = sum(self._store_front(a).max_base_for(freed[a.asset]) for a in self._for_sale(freed))
        spent = sum(b.base_amount for b in buys)
        plan = Plan(protocol=self.name, kind=batch_kind(accounts), account=first, accounts=tuple(accounts),
                    label=label, txs=(absorb, *self._buy_txs(buys)), spends=spends, expected=expected,
                    prices=prices,
                    gas_estimate=ABSORB_GAS + ABSORB_GAS_PER_ACCOUNT * len(accounts) + BUY_GAS * len(buys),
                    debt_usd=lead.debt_usd, force=self.cfg.absorb_without_profit, details=details,
                    shortfall=Spend(self.base, self.comet, need) if buys and need > spent else None)
        lead = replace(lead, label=label, status=Planned(plan, ACCRUAL_NOTE if accrual_only else None))
        covered = [replace(self._row(u, self.accounts[u], Covered(plan, f"absorbed in one batch with {first}")),
                           label=label) for u in accounts[1:]]
        return Assessment([lead, *covered], [plan])

    def _buy_only(self, budget: Budget) -> Plan | None:
        """Collateral already absorbed (by anyone) and still for sale: buy it without absorbing."""
        for_sale = {a.asset: a.reserves for a in self.assets.values() if a.reserves > 0}
        if not for_sale:
            return None
        if self.flash:
            sols, _ = self._flash_solutions((), for_sale)
            if not sols:
                return None
            assert self.swaps is not None
            return Plan(protocol=self.name, kind=PlanKind.BUY, account=self.comet, accounts=(),
                        label=f"buy {'+'.join(a.symbol for a, _ in sols)}", txs=tuple(self._flash_txs((), sols)),
                        expected={self.base: sum(q.profit for _, q in sols)},
                        prices={self.base: self._price(self.base)},
                        gas_estimate=cf.BUY_FLASH_GAS * len(sols), expected_from_simulation=True,
                        details=BuyOnlyDetails(
                            buys=tuple(BuyDetails(a.asset, a.symbol, q.candidate.size, q.candidate.sales[0].amount,
                                                  cm.min_amount(q.candidate.sales[0].amount, self.cfg.buy_slippage_bps))
                                       for a, q in sols),
                            reserves=self.reserves, target_reserves=self.target_reserves,
                            execution=Execution.FLASH.value,
                            flash=tuple(fx.report(q, self.swaps, self.base, self._price_of) for _, q in sols)))
        buys, _ = self._buys(for_sale, budget)
        if not buys:
            return None
        expected, prices, spends = self._priced(buys)
        return Plan(protocol=self.name, kind=PlanKind.BUY, account=self.comet, accounts=(),
                    label=f"buy {'+'.join(b.asset.symbol for b in buys)}", txs=tuple(self._buy_txs(buys)),
                    spends=spends, expected=expected, prices=prices, gas_estimate=BUY_GAS * len(buys),
                    details=BuyOnlyDetails(buys=self._buy_details(buys), reserves=self.reserves,
                                           target_reserves=self.target_reserves))

    # ---- shadow mode and fork rehearsals ----------------------------------------------------------
    async def liquidation_events(self, from_block: int, to_block: int) -> list[ObservedLiquidation]:
        """AbsorbDebt (one per borrower; the absorber is the winner) and BuyCollateral. Absorbing pays
        the absorber nothing: the value is the buys' discount (collateral at the feed price minus the
        base paid), counted on the first account absorbed in the same block, as an absorb-and-buy
        plan's buys follow its absorb; buys in a block without absorbs are one BUY of the market."""
        assert self.chain
        absorb, buy = COMET.event("AbsorbDebt"), COMET.event("BuyCollateral")
        logs = await self.chain.get_logs(self.comet, [[absorb.topic, buy.topic]], from_block, to_block)
        discount: dict[int, int | None] = {}  # block -> value of its buys
        first_buy: dict[int, tuple[str, str, int, str]] = {}  # block -> (buyer, tx, log index, asset symbol)
        for lg in logs:
            if lg.topics[0] == buy.topic:
                e = buy.decode(lg.topics, lg.data)
                a = self.assets.get(e["asset"])
                v = None if a is None else self._price(a.asset).usd(e["collateralAmount"]) - self._price(
                    self.base).usd(e["baseAmount"])
                prev = discount.get(lg.block_number, 0)
                discount[lg.block_number] = None if v is None or prev is None else prev + v
                first_buy.setdefault(lg.block_number, (e["buyer"], lg.tx_hash, lg.log_index, a.symbol if a else "?"))
        out: list[ObservedLiquidation] = []
        valued: set[int] = set()  # blocks whose buys are counted
        for lg in logs:
            if lg.topics[0] == absorb.topic:
                e = absorb.decode(lg.topics, lg.data)
                value = discount.get(lg.block_number, 0) if lg.block_number not in valued else 0
                valued.add(lg.block_number)
                out.append(ObservedLiquidation(self.name, PlanKind.LIQUIDATION, e["borrower"], e["absorber"],
                                               lg.block_number, lg.tx_hash, lg.log_index, value,
                                               f"absorb/{self.base_symbol}"))
        for blk, (buyer, tx, idx, sym) in first_buy.items():
            if blk not in valued:
                out.append(ObservedLiquidation(self.name, PlanKind.BUY, self.comet, buyer, blk, tx, idx,
                                               discount[blk], f"buy {sym}"))
        out.sort(key=lambda o: (o.block, o.log_index))
        return out

    async def price_feeds(self) -> dict[str, set[str]]:
        """The base token's and each collateral's price feed in the Comet configuration."""
        out = {a.asset: {a.feed} for a in self.assets.values()}
        out.setdefault(self.base, set()).add(self.base_feed)
        return out
