"""Morpho Blue: markets from CreateMarket logs (or a configured list of ids), positions from
Borrow / Repay / SupplyCollateral / WithdrawCollateral / Liquidate logs, health exactly as Morpho
computes it with interest accrued to the next block, plans sized so that liquidate() cannot revert
on rounding (see morpho_blue.maths). Morpho prices are in loan-token units; USD values come from
the Chainlink USD feed configured for each loan token. Each block only the positions whose trigger
price (maths.trigger_price: the oracle price below which the position may be unhealthy, its debt
given a margin for interest) the market's price is below are checked (assess_liquidatable); the
triggers of the positions read again are computed again, and all of a market's once its debt per
share has grown past the margin."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from eth_abi import encode
from eth_utils import keccak

from keeper.abi import load
from keeper.chain.client import Chain
from keeper.chain.multicall import Call, CallFailed
from keeper.chain.sender import TxRequest
from keeper.errors import StartupError
from keeper.oracles.chainlink import ChainlinkFeed
from keeper.protocols.base import (
    AccountView,
    Adapter,
    Assessment,
    Budget,
    Details,
    Execution,
    ObservedLiquidation,
    Plan,
    PlanKind,
    Planned,
    Services,
    Skip,
    SkipCode,
    Spend,
    TokenPrice,
    no_inventory,
)
from keeper.protocols.morpho_blue import flash as mf
from keeper.protocols.morpho_blue import maths as mm
from keeper.protocols.morpho_blue.config import MorphoBlueConfig
from keeper.protocols.price_index import Kind, LiquidationPriceIndex, Trigger
from keeper.swap import execution as fx
from keeper.swap.search import Solution, Unsolved, solve

log = structlog.get_logger()
MORPHO = load("morpho_blue/MorphoBlue")
IRM = load("morpho_blue/MorphoIrm")
ORACLE = load("morpho_blue/MorphoOracle")
ERC20 = load("ERC20")
ZERO = "0x0000000000000000000000000000000000000000"
LIQUIDATE_GAS = 250_000  # before simulation (real: ~220k)
# Trigger prices (keeper.protocols.price_index) hold while the market's debt per share grows less than this;
# beyond it, every position's trigger is computed again.
TRIGGER_MARGIN_BPS = 10
PRICE = "price"  # one index per market, its one asset: the market's oracle price
# Where the market id is in each event, and which field is the account.
ACCOUNT_FIELD = {"Borrow": "onBehalf", "Repay": "onBehalf", "SupplyCollateral": "onBehalf",
                 "WithdrawCollateral": "onBehalf", "Liquidate": "borrower"}


@dataclass
class MarketState:
    id: bytes
    params: tuple  # (loanToken, collateralToken, oracle, irm, lltv)
    loan_decimals: int = 0
    coll_decimals: int = 0
    loan_symbol: str = "?"
    coll_symbol: str = "?"
    market: mm.Market | None = None  # accrued to the next block
    price: int = 0  # oracle price, 1e36-scaled, loan units per collateral unit
    borrowers: set[str] = field(default_factory=set)
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)  # borrower -> (borrowShares, collateral)
    # Each borrower's trigger price (liquidatable only below it) and the market's (total borrow assets,
    # shares) they were computed at; None: not computed for every position yet.
    triggers: LiquidationPriceIndex = field(default_factory=LiquidationPriceIndex)
    trigger_base: tuple[int, int] | None = None

    @property
    def loan(self) -> str:
        return self.params[0]

    @property
    def collateral(self) -> str:
        return self.params[1]

    @property
    def lltv(self) -> int:
        return self.params[4]


@dataclass(frozen=True)
class MorphoDetails(Details):
    market: str  # the market id, 0x-hex
    lltv: int
    seized: int
    repaid_assets: int
    repaid_shares: int
    bad_debt: bool
    execution: str = Execution.INVENTORY.value
    flash: fx.FlashReport | None = None  # flash mode: route, quote, profit enforced by the executor


def market_id(params: tuple) -> bytes:
    return keccak(encode(["address", "address", "address", "address", "uint256"], list(params)))


class MorphoBlueAdapter(Adapter[MorphoBlueConfig]):
    def __init__(self, cfg: MorphoBlueConfig, services: Services):
        liquidator = services.liquidator
        self.cfg = cfg
        self.name = cfg.name
        self.morpho = cfg.morpho
        self.liquidator = liquidator
        self.markets: dict[bytes, MarketState] = {}
        self.feeds = {token: ChainlinkFeed(feed) for token, feed in cfg.usd_feeds.items()}
        self.usd: dict[str, int] = {}  # loan token -> USD price (8 dec)
        self.chain: Chain | None = None
        # (market, account) pairs named by the logs discovery read since the last refresh: only
        # their positions are read again (incremental mode); the market totals are read every block.
        self.dirty: set[tuple[bytes, str]] = set()
        self.positions_read = 0
        self.swaps = services.swaps
        self.flash = cfg.execution == Execution.FLASH
        # (market id, borrower) -> this block's flash solution (flash mode, or a scan with [swap])
        self.quotes: dict[tuple[bytes, str], Solution | Unsolved] = {}

    def contracts(self) -> dict[str, str]:
        out = {"Morpho": self.morpho, **{f"USD feed of {t}": f.address for t, f in self.feeds.items()}}
        return out | ({"LiquidationExecutor": self.cfg.executor} if self.flash and self.cfg.executor else {})

    def tokens(self) -> set[str]:
        return {m.loan for m in self.markets.values()}

    def spenders(self) -> set[tuple[str, str]]:
        """Inventory mode repays the loan token from the wallet: Morpho pulls it."""
        return set() if self.flash else {(m.loan, self.morpho) for m in self.markets.values()}

    async def start(self, chain: Chain) -> None:
        self.chain = chain
        if not await chain.get_code(self.morpho):
            raise StartupError(f"{self.name}: no contract at morpho {self.morpho}")
        if self.flash:
            assert self.swaps is not None and self.cfg.executor  # the config requires [swap] and executor
            await self.swaps.start()
            await fx.check_executor(chain, self.name, self.cfg.executor, self.liquidator)
        for hex_id in self.cfg.markets:
            mid = bytes.fromhex(hex_id[2:])
            fn = MORPHO.fn("idToMarketParams")
            params = await chain.call(self.morpho, fn.signature, ["bytes32"], [mid], fn.outputs)
            if params[0] == ZERO:
                raise StartupError(f"{self.name}: market {hex_id} does not exist on {self.morpho}")
            await self._add_market(mid, tuple(params))

    async def _add_market(self, mid: bytes, params: tuple) -> None:
        if mid in self.markets:
            return
        if market_id(params) != mid:
            raise StartupError(f"{self.name}: market {mid.hex()} does not hash to its parameters")
        m = MarketState(mid, params)
        dec, sym = ERC20.fn("decimals"), ERC20.fn("symbol")
        assert self.chain
        res = await self.chain.multicall([Call(t, f.encode(), f.decode) for t in params[:2] for f in (dec, sym)])
        defaults: tuple[Any, ...] = (18, "?", 18, "?")
        m.loan_decimals, m.loan_symbol, m.coll_decimals, m.coll_symbol = (
            r if not isinstance(r, CallFailed) else d for r, d in zip(res, defaults))
        self.markets[mid] = m

    async def discover(self, from_block: int, to_block: int) -> int:
        assert self.chain
        names = list(ACCOUNT_FIELD) + ([] if self.cfg.markets else ["CreateMarket"])
        events = {MORPHO.event(n).topic: MORPHO.event(n) for n in names}
        logs = await self.chain.get_logs(self.morpho, [list(events)], from_block, to_block)
        new = 0
        for lg in logs:
            ev = events[lg.topics[0]]
            fields = ev.decode(lg.topics, lg.data)
            mid = fields["id"]
            if ev.name == "CreateMarket":
                if mid not in self.markets:
                    await self._add_market(mid, tuple(fields["marketParams"]))
                    new += 1  # a market found (a key for the durable index too)
                continue
            m = self.markets.get(mid)
            if m is None:
                continue  # a market outside the configured list
            acct = fields[ACCOUNT_FIELD[ev.name]]
            self.dirty.add((mid, acct))
            if acct not in m.borrowers:
                m.borrowers.add(acct)
                new += 1
        return new

    def account_keys(self) -> set[str]:
        """Store keys: each market with what _add_market read ("market:" + JSON: id, params,
        decimals, symbols: markets found from CreateMarket logs come back without their logs) and
        each borrower ("borrower:<market id>:<address>")."""
        keys = {"market:" + json.dumps(["0x" + m.id.hex(), list(m.params), m.loan_decimals, m.coll_decimals,
                                        m.loan_symbol, m.coll_symbol]) for m in self.markets.values()}
        for m in self.markets.values():
            keys |= {f"borrower:0x{m.id.hex()}:{b}" for b in m.borrowers}
        return keys

    def restore_accounts(self, keys: set[str]) -> bool:
        """Markets (checked against their id: the id is the hash of the parameters) and borrowers
        of an earlier run; refused (discovery reads the logs again) on a key it cannot take."""
        markets: dict[bytes, MarketState] = {}
        borrowers: list[tuple[bytes, str]] = []
        try:
            for k in keys:
                kind, _, rest = k.partition(":")
                if kind == "market":
                    hex_id, params, loan_dec, coll_dec, loan_sym, coll_sym = json.loads(rest)
                    mid, p = bytes.fromhex(hex_id[2:]), tuple(params)
                    if market_id(p) != mid:
                        return False
                    markets[mid] = MarketState(mid, p, loan_dec, coll_dec, loan_sym, coll_sym)
                elif kind == "borrower":
                    hex_id, borrower = rest.split(":")
                    borrowers.append((bytes.fromhex(hex_id[2:]), borrower))
                else:
                    return False
        except (ValueError, TypeError):
            return False
        if any(mid not in markets for mid in self.markets):
            return False  # a market configured since: its older logs were never read
        for mid, m in markets.items():
            if self.cfg.markets and mid not in self.markets:
                continue  # no longer configured
            self.markets.setdefault(mid, m)
        for mid, b in borrowers:
            if mid in self.markets:
                self.markets[mid].borrowers.add(b)
        return True

    async def refresh(self, block: int, *, all_details: bool = False) -> None:
        assert self.chain
        ts = int((await self.chain.get_block(block))["timestamp"], 16) + 1  # the next block, at the earliest
        markets = list(self.markets.values())
        mfn, pfn = MORPHO.fn("market"), MORPHO.fn("position")
        price_fn, rate_fn = ORACLE.fn("price"), IRM.fn("borrowRateView")
        calls: list[Call] = []
        for m in markets:
            calls += [Call(self.morpho, mfn.encode(m.id), mfn.decode),
                      Call(m.params[2], price_fn.encode(), price_fn.decode)]
        res = await self.chain.multicall(calls, block)
        rate_calls, rate_markets = [], []
        for i, m in enumerate(markets):
            mk, price = res[2 * i], res[2 * i + 1]
            if isinstance(mk, CallFailed) or isinstance(price, CallFailed):
                log.warning("morpho.market_read_failed", protocol=self.name, market="0x" + m.id.hex())
                m.market = None
                continue
            m.price = price
            m.market = mm.Market(*mk)
            if m.params[3] != ZERO:
                rate_calls.append(Call(m.params[3], rate_fn.encode(m.params, mk), rate_fn.decode))
                rate_markets.append(m)
        rates = await self.chain.multicall(rate_calls, block)
        for m, rate in zip(rate_markets, rates):
            assert m.market is not None
            m.market = mm.accrue(m.market, 0 if isinstance(rate, CallFailed) else rate, ts)
        pos_calls, slots = [], []
        everyone = all_details or not self.cfg.incremental
        for m in markets:
            for b in sorted(m.borrowers):
                if everyone or b not in m.positions or (m.id, b) in self.dirty:
                    pos_calls.append(Call(self.morpho, pfn.encode(m.id, b), pfn.decode))
                    slots.append((m, b))
        self.dirty.clear()
        for (m, b), p in zip(slots, await self.chain.multicall(pos_calls, block)):
            if isinstance(p, CallFailed):
                m.positions.pop(b, None)  # read again next block
                m.triggers.remove(b)
            else:
                m.positions[b] = (p[1], p[2])
        self.positions_read += len(slots)
        reread: dict[bytes, list[str]] = {}
        for m, b in slots:
            reread.setdefault(m.id, []).append(b)
        for m in markets:
            self._index(m, reread.get(m.id, []))
        for token, feed in self.feeds.items():
            self.usd[token] = (await feed.read(self.chain, block)).price_8
        await self._quote(block, all_details)

    async def _quote(self, block: int, all_details: bool) -> None:
        """Flash mode (or a scan with [swap]): the best seized amount of each liquidatable position,
        with its sale quoted on Uniswap V3."""
        self.quotes = {}
        if self.swaps is None or not (self.flash or all_details):
            return
        problems = []
        for m in self.markets.values():
            if m.market is None:
                continue
            for b, (shares, collateral) in m.positions.items():
                if shares and collateral and not mm.is_healthy(shares, collateral, m.market, m.price, m.lltv):
                    p = mf.problem((m.id, b), m.loan, m.collateral, shares, collateral, m.market, m.price, m.lltv)
                    if p is not None:
                        problems.append(p)
        if problems:
            self.quotes = await solve(self.swaps, problems, block)  # type: ignore[assignment]

    def _index(self, m: MarketState, reread: list[str]) -> None:
        """Trigger prices of the positions read again, or of every position once the market's debt
        per share has grown past TRIGGER_MARGIN_BPS since they were computed."""
        if m.market is None:
            m.trigger_base = None
            return
        tba, tbs = m.market.total_borrow_assets + mm.VIRTUAL_ASSETS, m.market.total_borrow_shares + mm.VIRTUAL_SHARES
        base = m.trigger_base
        if base is None or tba * base[1] * 10_000 > base[0] * tbs * (10_000 + TRIGGER_MARGIN_BPS):
            todo: list[str] = list(m.positions)
            m.trigger_base = (tba, tbs)
        else:
            todo = [b for b in reread if b in m.positions]
        for b in todo:
            shares, collateral = m.positions[b]
            t = mm.trigger_price(shares, collateral, m.market, m.lltv, TRIGGER_MARGIN_BPS)
            m.triggers.put(b, {} if t is None else {PRICE: Trigger(Kind.BELOW, t)})

    # ---- planning -------------------------------------------------------------------------
    def _prices(self, m: MarketState) -> dict[str, TokenPrice] | None:
        loan_usd = self.usd.get(m.loan)
        if loan_usd is None:
            return None
        # One whole collateral token in USD: oracle price (loan units per collateral unit, 1e36)
        # x 10^collDec / 10^loanDec, times the loan token's USD price.
        coll_usd = m.price * 10**m.coll_decimals * loan_usd // (mm.ORACLE_PRICE_SCALE * 10**m.loan_decimals)
        return {m.loan: TokenPrice(loan_usd, m.loan_decimals, m.loan_symbol),
                m.collateral: TokenPrice(coll_usd, m.coll_decimals, m.coll_symbol)}

    def assess(self, budget: Budget) -> Assessment:
        out = Assessment()
        for m in self.markets.values():
            for b, (shares, _) in m.positions.items():
                if shares > 0:
                    view, plan = self._plan(m, b, budget)
                    out.views.append(view)
                    out.plans += [plan] if plan else []
        return out

    def assess_liquidatable(self, budget: Budget) -> Assessment:
        """Each block: only the positions whose trigger price the market's oracle price is below are
        checked (and planned when liquidatable); the others are counted healthy. A market whose
        triggers are not computed (unreadable) is checked position by position."""
        out = Assessment()
        for m in self.markets.values():
            debtors = sum(1 for s, _ in m.positions.values() if s > 0)
            if m.trigger_base is None:
                todo = [b for b, (s, _) in m.positions.items() if s > 0]
            else:
                todo = sorted(b for b in m.triggers.at_risk(PRICE, m.price) if m.positions.get(b, (0, 0))[0] > 0)
            kept = 0
            for b in todo:
                view, plan = self._plan(m, b, budget)
                if view.liquidatable:
                    out.views.append(view)
                    out.plans += [plan] if plan else []
                    kept += 1
            out.healthy += debtors - kept
        return out

    def replan(self, plan: Plan, budget: Budget) -> Plan | Skip:
        assert isinstance(plan.details, MorphoDetails)
        view, new = self._plan(self.markets[bytes.fromhex(plan.details.market[2:])], plan.account, budget)
        return new or view.skip or Skip(SkipCode.NOTHING_LEFT, "nothing left to plan with")

    def _plan(self, m: MarketState, borrower: str, budget: Budget) -> tuple[AccountView, Plan | None]:
        shares, collateral = m.positions[borrower]
        label = f"{m.coll_symbol}/{m.loan_symbol} lltv {m.lltv / 1e18:.3f}"
        prices = self._prices(m)
        if m.market is None or prices is None:
            unread = (Skip(SkipCode.UNREADABLE, "market unreadable") if m.market is None
                      else Skip(SkipCode.NO_PRICE, f"no usd_feeds entry for loan token {m.loan}"))
            return AccountView(self.name, borrower, label, None, 0, False, unread), None
        debt = mm.borrowed(shares, m.market)
        cap = mm.max_borrow(collateral, m.price, m.lltv)
        health = cap / debt if debt else None
        base = AccountView(self.name, borrower, label, health, prices[m.loan].usd(debt),
                           not mm.is_healthy(shares, collateral, m.market, m.price, m.lltv),
                           Skip(SkipCode.NOT_LIQUIDATABLE, "healthy"))
        if not base.liquidatable:
            return base, None
        if collateral == 0:
            return replace(base, status=Skip(SkipCode.NO_COLLATERAL, "no collateral left to seize")), None
        inventory = self._inventory_plan(m, borrower, base, prices, budget)
        quote = self.quotes.get((m.id, borrower))
        flash = self._flash_plan(m, borrower, base, prices, quote) if self.flash else None
        modes = fx.modes(self.cfg.execution,
                         inventory_usd=inventory.gross_usd if isinstance(inventory, Plan) else None,
                         inventory_gas=LIQUIDATE_GAS, flash=quote, flash_gas=mf.FLASH_GAS,
                         profit_price=prices[m.loan], swaps=self.swaps, price=prices.get, profit_token=m.loan)
        chosen = flash if self.flash else inventory
        assert chosen is not None
        if isinstance(chosen, Skip):
            return replace(base, status=chosen, modes=modes), None
        return replace(base, status=Planned(chosen), modes=modes), chosen

    def _inventory_plan(self, m: MarketState, borrower: str, base: AccountView, prices: dict[str, TokenPrice],
                        budget: Budget) -> Plan | Skip:
        """liquidate() paid from the wallet, which keeps the seized collateral."""
        assert m.market is not None
        shares, collateral = m.positions[borrower]
        wallet = budget.get(m.loan, 0)
        liq = mm.plan(shares, collateral, m.market, m.price, m.lltv, wallet)
        whole = mm.plan(shares, collateral, m.market, m.price, m.lltv, mf.UNLIMITED)
        need = whole.repaid_assets + whole.repaid_assets * 5 // 10_000 + 1 if whole else 0
        if liq is None:
            return no_inventory(m.loan, wallet, need, prices[m.loan], "not enough to repay any share")
        spend = liq.repaid_assets + liq.repaid_assets * 5 // 10_000 + 1
        tx = TxRequest(self.morpho, MORPHO.fn("liquidate").encode(m.params, borrower, liq.seized_assets,
                                                                 liq.repaid_shares, b""),
                       what=f"liquidate {base.label} {borrower}")
        return Plan(protocol=self.name, kind=PlanKind.LIQUIDATION, account=borrower, accounts=(borrower,),
                    label=base.label, txs=(tx,), spends=(Spend(m.loan, self.morpho, spend),),
                    expected={m.loan: -liq.repaid_assets, m.collateral: liq.seized}, prices=prices,
                    gas_estimate=LIQUIDATE_GAS, debt_usd=base.debt_usd,
                    details=MorphoDetails(market="0x" + m.id.hex(), lltv=m.lltv, seized=liq.seized,
                                          repaid_assets=liq.repaid_assets, repaid_shares=liq.repaid_shares,
                                          bad_debt=liq.bad_debt),
                    shortfall=Spend(m.loan, self.morpho, need) if need > spend else None)

    def _flash_plan(self, m: MarketState, borrower: str, base: AccountView, prices: dict[str, TokenPrice],
                    quote: Solution | Unsolved | None) -> Plan | Skip:
        """liquidateMorphoBlue through the executor: the collateral sold inside Morpho's callback."""
        assert m.market is not None and self.swaps is not None
        if quote is None:  # morpho_blue.maths found no size liquidate() accepts without a rounding revert
            return Skip(SkipCode.NO_VALID_AMOUNT, "no liquidation size Morpho accepts (shares rounding)")
        skip = fx.skip_of(quote, prices.get, self.swaps, m.loan)
        if skip is not None or not isinstance(quote, Solution):
            return skip or Skip(SkipCode.UNREADABLE, "no quote this block")
        shares, collateral = m.positions[borrower]
        bps = self.swaps.cfg.slippage_bps
        assert self.cfg.executor
        data, liq = mf.calldata(quote, self.morpho, m.params, borrower, shares, collateral, m.market, m.price, m.lltv,
                                fx.executor_swaps(quote, self.swaps.cfg.router, bps), fx.profit_arg(quote, m.loan, bps))
        report = fx.report(quote, self.swaps, m.loan, prices.get)
        tx = TxRequest(self.cfg.executor, data, what=f"liquidateMorphoBlue {base.label} {borrower} via {report.route}")
        return Plan(protocol=self.name, kind=PlanKind.LIQUIDATION, account=borrower, accounts=(borrower,),
                    label=base.label, txs=(tx,), expected={m.loan: quote.profit}, prices={m.loan: prices[m.loan]},
                    gas_estimate=mf.FLASH_GAS, debt_usd=base.debt_usd, expected_from_simulation=True,
                    details=MorphoDetails(market="0x" + m.id.hex(), lltv=m.lltv, seized=liq.seized,
                                          repaid_assets=liq.repaid_assets, repaid_shares=liq.repaid_shares,
                                          bad_debt=liq.bad_debt, execution=Execution.FLASH.value, flash=report))

    # ---- shadow mode and fork rehearsals ----------------------------------------------------------
    async def liquidation_events(self, from_block: int, to_block: int) -> list[ObservedLiquidation]:
        """Morpho Liquidate events of the watched markets; value = collateral seized minus the loan
        assets repaid, at the oracle and USD-feed prices of the last refresh."""
        assert self.chain
        ev = MORPHO.event("Liquidate")
        out = []
        for lg in await self.chain.get_logs(self.morpho, [[ev.topic]], from_block, to_block):
            e = ev.decode(lg.topics, lg.data)
            m = self.markets.get(e["id"])
            if m is None:
                continue
            prices = self._prices(m)
            value = None if prices is None else (prices[m.collateral].usd(e["seizedAssets"])
                                                  - prices[m.loan].usd(e["repaidAssets"]))
            out.append(ObservedLiquidation(self.name, PlanKind.LIQUIDATION, e["borrower"], e["caller"], lg.block_number,
                                           lg.tx_hash, lg.log_index, value, f"{m.coll_symbol}/{m.loan_symbol}"))
        return out

    async def price_feeds(self) -> dict[str, set[str]]:
        """The configured usd_feeds (a market's own oracle moves when it reads a feed shocked here)."""
        return {t: {f.address} for t, f in self.feeds.items()}
