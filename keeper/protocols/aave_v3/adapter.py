"""Aave V3 (and forks): discovery from Pool logs, account mirror through Multicall3, plans that
maximise profit under the configured close-factor rules (see aave_v3_rules)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import cast

import structlog
from eth_utils import to_checksum_address

from keeper.abi import load
from keeper.chain.client import Chain
from keeper.chain.multicall import Call, CallFailed
from keeper.chain.sender import TxRequest
from keeper.errors import StartupError
from keeper.protocols.aave_v3 import flash as af
from keeper.protocols.aave_v3.config import AaveV3Config
from keeper.protocols.aave_v3.rules import UINT_MAX, Side, best_amount
from keeper.protocols.base import (
    USD,
    AccountView,
    Adapter,
    Assessment,
    Budget,
    Details,
    Execution,
    Plan,
    PlanKind,
    Planned,
    Services,
    Skip,
    SkipCode,
    Spend,
    TokenPrice,
    no_inventory,
    value_usd,
)
from keeper.swap import execution as fx
from keeper.swap.search import Solution, Unsolved, solve

log = structlog.get_logger()
POOL = load("aave_v3/AaveV3Pool")
PROVIDER = load("aave_v3/AaveV3PoolAddressesProvider")
ORACLE = load("aave_v3/AaveOracle")
ERC20 = load("ERC20")

LIQUIDATION_GAS = 450_000  # estimate before simulation (a real liquidationCall: ~320k)
# Wallet margin over the debt when a plan clears a whole debt reserve with debtToCover = max:
# interest accrues between the read and the execution.
CLEAR_MARGIN_BPS = 10
HF_ONE = 10**18
HEALTHY = Skip(SkipCode.NOT_LIQUIDATABLE, "healthy")


def _bits(word: int, lo: int, hi: int) -> int:
    return (word >> lo) & ((1 << (hi - lo + 1)) - 1)


@dataclass
class Reserve:
    asset: str
    id: int
    a_token: str
    stable_debt: str
    variable_debt: str
    config: int = 0
    symbol: str = "?"
    price: int = 0

    # ReserveConfiguration bit layout (Aave V3 ReserveConfiguration.sol).
    @property
    def liquidation_threshold(self) -> int:
        return _bits(self.config, 16, 31)

    @property
    def bonus(self) -> int:
        return _bits(self.config, 32, 47)

    @property
    def decimals(self) -> int:
        return _bits(self.config, 48, 55)

    @property
    def active(self) -> bool:
        return bool(_bits(self.config, 56, 56))

    @property
    def paused(self) -> bool:
        return bool(_bits(self.config, 60, 60))

    @property
    def protocol_fee(self) -> int:
        return _bits(self.config, 152, 167)

    @property
    def emode_category(self) -> int:
        return _bits(self.config, 168, 175)


@dataclass
class UserState:
    total_collateral_base: int = 0
    total_debt_base: int = 0
    health_factor: int = 2**256 - 1
    config: int = 0  # user configuration bitmap
    emode: int = 0
    collateral: dict[str, int] = field(default_factory=dict)  # asset -> aToken balance
    debt: dict[str, int] = field(default_factory=dict)  # asset -> variable + stable debt
    block: int = 0


@dataclass(frozen=True)
class AaveDetails(Details):
    collateral: str
    debt: str
    debt_to_cover: int
    collateral_received: int
    protocol_fee: int
    clears_debt: bool
    rules: str
    execution: str = Execution.INVENTORY.value
    flash: fx.FlashReport | None = None  # flash mode: route, quote, lender, profit enforced by the executor


class AaveV3Adapter(Adapter[AaveV3Config]):
    def __init__(self, cfg: AaveV3Config, services: Services):
        liquidator = services.liquidator
        self.cfg = cfg
        self.name = cfg.name
        self.liquidator = liquidator
        self.provider = cfg.addresses_provider
        self.pool = ""
        self.oracle = ""
        self.reserves: dict[str, Reserve] = {}
        self.users: dict[str, UserState] = {}
        self.emode_bonus: dict[int, tuple[int, str]] = {}  # category -> (bonus, priceSource)
        self.chain: Chain | None = None
        self.swaps = services.swaps
        self.flash = cfg.execution == Execution.FLASH
        # user -> (collateral, debt) -> this block's flash solution (flash mode, or a scan with [swap])
        self.quotes: dict[str, dict[tuple[str, str], Solution | Unsolved]] = {}

    def contracts(self) -> dict[str, str]:
        out = {"PoolAddressesProvider": self.provider, "Pool": self.pool, "AaveOracle": self.oracle}
        return out | ({"LiquidationExecutor": self.cfg.executor} if self.flash and self.cfg.executor else {})

    def tokens(self) -> set[str]:
        return set(self.reserves)

    async def start(self, chain: Chain) -> None:
        self.chain = chain
        if not await chain.get_code(self.provider):
            raise StartupError(f"{self.name}: no contract at addresses_provider {self.provider}")
        pool, oracle = await chain.multicall_strict([
            Call(self.provider, PROVIDER.fn("getPool").encode(), PROVIDER.fn("getPool").decode),
            Call(self.provider, PROVIDER.fn("getPriceOracle").encode(), PROVIDER.fn("getPriceOracle").decode),
        ])
        self.pool, self.oracle = pool, oracle
        if self.flash:
            assert self.swaps is not None and self.cfg.executor  # the config requires [swap] and executor
            await self.swaps.start()
            await fx.check_executor(chain, self.name, self.cfg.executor, self.liquidator)
        unit = (await chain.multicall([Call(oracle, ORACLE.fn("BASE_CURRENCY_UNIT").encode(),
                                            ORACLE.fn("BASE_CURRENCY_UNIT").decode)]))[0]
        if not isinstance(unit, CallFailed) and unit != USD:
            raise StartupError(f"{self.name}: oracle base currency unit is {unit}, the keeper needs USD (1e8)")
        await self._load_reserves()

    async def _load_reserves(self) -> None:
        assert self.chain
        assets = await self.chain.call(self.pool, POOL.fn("getReservesList").signature, out=("address[]",))
        fn = POOL.fn("getReserveData")
        datas = await self.chain.multicall_strict([Call(self.pool, fn.encode(a), fn.decode) for a in assets])
        syms = await self.chain.multicall([Call(a, ERC20.fn("symbol").encode(), ERC20.fn("symbol").decode)
                                           for a in assets])
        for asset, d, sym in zip(assets, datas, syms):
            r = self.reserves.get(asset) or Reserve(asset, d[7], d[8], d[9], d[10])
            r.config = d[0][0]
            r.symbol = sym if isinstance(sym, str) else asset[:8]
            self.reserves[asset] = r

    async def discover(self, from_block: int, to_block: int) -> int:
        assert self.chain
        ev = {n: POOL.event(n) for n in ("Supply", "Borrow", "Repay", "Withdraw", "LiquidationCall")}
        # The user is topic 2 (onBehalfOf / user) for all but LiquidationCall (topic 3).
        user_topic = {ev[n].topic: (3 if n == "LiquidationCall" else 2) for n in ev}
        logs = await self.chain.get_logs(self.pool, [list(user_topic)], from_block, to_block)
        new = 0
        for lg in logs:
            idx = user_topic.get(lg.topics[0])
            if idx is None or len(lg.topics) <= idx:
                continue
            user = to_checksum_address("0x" + lg.topics[idx][-40:])
            if user not in self.users:
                self.users[user] = UserState()
                new += 1
        return new

    async def refresh(self, block: int, *, all_details: bool = False) -> None:
        assert self.chain
        await self._load_reserves()  # configuration may change (bonus, fees, pauses)
        assets = list(self.reserves)
        users = list(self.users)
        prices_fn = ORACLE.fn("getAssetsPrices")
        acct, ucfg, emode = POOL.fn("getUserAccountData"), POOL.fn("getUserConfiguration"), POOL.fn("getUserEMode")
        calls = [Call(self.oracle, prices_fn.encode(assets), prices_fn.decode)]
        for u in users:
            calls += [Call(self.pool, acct.encode(u), acct.decode),
                      Call(self.pool, ucfg.encode(u), ucfg.decode),
                      Call(self.pool, emode.encode(u), emode.decode)]
        res = await self.chain.multicall(calls, block)
        if isinstance(res[0], CallFailed):
            raise RuntimeError(f"{self.name}: AaveOracle.getAssetsPrices failed at block {block}")  # noqa: TRY004
        for a, p in zip(assets, res[0]):
            self.reserves[a].price = p
        detail: list[tuple[str, UserState]] = []
        for i, u in enumerate(users):
            data, cfgw, em = res[1 + 3 * i: 4 + 3 * i]
            if any(isinstance(x, CallFailed) for x in (data, cfgw, em)):
                log.warning("aave.user_read_failed", protocol=self.name, user=u)
                continue
            st = self.users[u]
            st.total_collateral_base, st.total_debt_base, _, _, _, st.health_factor = data
            st.config = cfgw[0] if isinstance(cfgw, tuple) else cfgw
            st.emode = em
            st.block = block
            st.collateral, st.debt = {}, {}
            if st.total_debt_base > 0 and (all_details or st.health_factor < HF_ONE):
                detail.append((u, st))
        await self._load_emode({st.emode for _, st in detail if st.emode})
        await self._read_balances(detail, block)
        await self._quote(block, all_details)

    async def _quote(self, block: int, all_details: bool) -> None:
        """Flash mode (or a scan with [swap]): for each liquidatable account's best pairs at oracle
        prices, the debtToCover that pays most once the collateral is sold on Uniswap V3."""
        self.quotes = {}
        if self.swaps is None or not (self.flash or all_details):
            return
        problems = []
        for u, st in self.users.items():
            if st.health_factor >= HF_ONE or not st.debt or not any(st.collateral.values()):
                continue
            pairs = sorted(self._pairs(st)[0], key=lambda x: -self._oracle_profit(st, x))[:af.MAX_PAIRS]
            for pair in pairs:
                p = af.problem((u, pair.collateral, pair.debt), pair, self.cfg.close_factor_rules,
                               st.health_factor, st.total_debt_base, self.pool, CLEAR_MARGIN_BPS)
                if p is not None:
                    problems.append(p)
        for key, result in (await solve(self.swaps, problems, block)).items():
            u, c, d = cast(tuple[str, str, str], key)
            self.quotes.setdefault(u, {})[(c, d)] = result

    async def _load_emode(self, categories: set[int]) -> None:
        assert self.chain
        fn = POOL.fn("getEModeCategoryData")
        todo = sorted(c for c in categories if c not in self.emode_bonus)
        res = await self.chain.multicall_strict([Call(self.pool, fn.encode(c), fn.decode) for c in todo])
        for c, data in zip(todo, res):
            self.emode_bonus[c] = (data[2], data[3])

    async def _read_balances(self, detail: list[tuple[str, UserState]], block: int) -> None:
        assert self.chain
        bal = ERC20.fn("balanceOf")
        calls, slots = [], []
        for u, st in detail:
            for r in self.reserves.values():
                borrowing = (st.config >> (2 * r.id)) & 1
                collateral = (st.config >> (2 * r.id + 1)) & 1
                if collateral:
                    calls.append(Call(r.a_token, bal.encode(u), bal.decode))
                    slots.append((st, "c", r.asset))
                if borrowing:
                    for tok in (r.variable_debt, r.stable_debt):
                        calls.append(Call(tok, bal.encode(u), bal.decode))
                        slots.append((st, "d", r.asset))
        res = await self.chain.multicall(calls, block)
        for (st, kind, asset), v in zip(slots, res):
            if isinstance(v, CallFailed):
                continue  # e.g. a fork without stable debt tokens (address 0)
            book = st.collateral if kind == "c" else st.debt
            book[asset] = book.get(asset, 0) + v

    # ---- planning -------------------------------------------------------------------------
    def _price(self, asset: str) -> TokenPrice:
        r = self.reserves[asset]
        return TokenPrice(r.price, r.decimals, r.symbol)

    def assess(self, budget: Budget) -> Assessment:
        out = Assessment()
        for u, st in self.users.items():
            if st.total_debt_base > 0:
                view, plan = self._plan(u, st, budget)
                out.views.append(view)
                out.plans += [plan] if plan else []
        return out

    def replan(self, plan: Plan, budget: Budget) -> Plan | Skip:
        view, new = self._plan(plan.account, self.users[plan.account], budget)
        return new or view.skip or Skip(SkipCode.NOTHING_LEFT, "nothing left to plan with")

    def _plan(self, user: str, st: UserState, budget: Budget) -> tuple[AccountView, Plan | None]:
        hf = st.health_factor
        base = AccountView(protocol=self.name, account=user, label="-", health=hf / HF_ONE,
                           debt_usd=st.total_debt_base, liquidatable=hf < HF_ONE, status=HEALTHY)
        if hf >= HF_ONE:
            return (base, None) if not st.debt else self._best(user, st, base, budget, dry=True)
        if not st.debt:
            return replace(base, status=Skip(SkipCode.UNREADABLE, "no balances read")), None
        if not any(st.collateral.values()):
            return replace(base, status=Skip(SkipCode.NO_COLLATERAL, "bad debt: no collateral left to seize")), None
        return self._best(user, st, base, budget)

    def _pairs(self, st: UserState) -> tuple[list[af.Pair], list[str]]:
        """Every (collateral, debt) pair liquidationCall could take, with the bonus that applies
        (eMode); and why some cannot be."""
        pairs, reasons = [], []
        for c_asset, c_bal in st.collateral.items():
            cr = self.reserves[c_asset]
            if c_bal == 0 or cr.liquidation_threshold == 0 or not cr.active or cr.paused:
                continue
            bonus = cr.bonus
            if st.emode and cr.emode_category == st.emode:
                bonus, price_source = self.emode_bonus.get(st.emode, (bonus, None))
                if price_source and int(price_source, 16) != 0:
                    reasons.append("eMode category with its own price source is not supported")
                    continue
            for d_asset, d_bal in st.debt.items():
                dr = self.reserves[d_asset]
                if d_bal == 0 or not dr.active or dr.paused or cr.price == 0 or dr.price == 0:
                    continue
                pairs.append(af.Pair(c_asset, d_asset, Side(cr.price, cr.decimals, c_bal),
                                     Side(dr.price, dr.decimals, d_bal), bonus, cr.protocol_fee))
        return pairs, reasons

    def _oracle_profit(self, st: UserState, pair: af.Pair) -> int:
        """The pair's largest liquidation valued at oracle prices (collateral received - debt repaid)."""
        found = best_amount(self.cfg.close_factor_rules, st.health_factor, st.total_debt_base, pair.coll,
                            pair.debt_side, pair.bonus, pair.protocol_fee, UINT_MAX)
        if found is None:
            return -(2**255)
        out = found[1]
        return (self._price(pair.collateral).usd(out.collateral_to_liquidator)
                - self._price(pair.debt).usd(out.debt_repaid))

    def _best(self, user: str, st: UserState, base: AccountView, budget: Budget,
              dry: bool = False) -> tuple[AccountView, Plan | None]:
        """The inventory plan (the best pair for the wallet) and the flash plan (the best quoted
        pair); the configured mode's plan is sent, both modes' figures are shown."""
        inventory = self._inventory(user, st, base, budget, dry)
        if isinstance(inventory, tuple):  # dry: the view of a healthy account
            return inventory
        if dry:
            assert isinstance(inventory, Skip)
            return replace(base, status=inventory), None
        quotes = self.quotes.get(user, {})
        flash = self._flash(user, st, base, quotes) if self.flash else None
        shown = max(quotes.items(), key=lambda kv: self._price(kv[0][1]).usd(kv[1].profit)
                    if isinstance(kv[1], Solution) else -(2**255), default=None)
        debt = shown[0][1] if shown else ""
        modes = fx.modes(self.cfg.execution,
                         inventory_usd=inventory.gross_usd if isinstance(inventory, Plan) else None,
                         inventory_gas=LIQUIDATION_GAS, flash=shown[1] if shown else None, flash_gas=af.FLASH_GAS,
                         profit_price=self._price(debt) if debt else None, swaps=self.swaps, price=self._price_of,
                         profit_token=debt)
        chosen = flash if self.flash else inventory
        assert chosen is not None and not isinstance(chosen, tuple)
        if isinstance(chosen, Skip):
            return replace(base, status=chosen, modes=modes), None
        return replace(base, label=chosen.label, status=Planned(chosen), modes=modes), chosen

    def _price_of(self, token: str) -> TokenPrice | None:
        return self._price(token) if token in self.reserves else None

    def _inventory(self, user: str, st: UserState, base: AccountView, budget: Budget,
                   dry: bool) -> Plan | Skip | tuple[AccountView, None]:
        """Try every (collateral, debt) pair with the wallet's balance; keep the one with the highest
        profit (``dry``: as much as the rules allow, for a scan of a healthy account: its view)."""
        rules = self.cfg.close_factor_rules
        best = None
        pairs, reasons = self._pairs(st)
        short: dict[str, int] = {}  # debt asset -> what the pair's whole liquidation needs
        for pair in pairs:
            c_asset, d_asset, coll, debt = pair.collateral, pair.debt, pair.coll, pair.debt_side
            cr, dr = self.reserves[c_asset], self.reserves[d_asset]
            d_bal = debt.balance
            # As much as the rules allow if we are only looking (scan of a healthy account).
            wallet = UINT_MAX if dry else budget.get(d_asset, 0)
            found = best_amount(rules, st.health_factor, st.total_debt_base, coll, debt, pair.bonus,
                                pair.protocol_fee, wallet)
            whole = best_amount(rules, st.health_factor, st.total_debt_base, coll, debt, pair.bonus,
                                pair.protocol_fee, UINT_MAX)
            if whole is not None and (found is None or found[1].debt_repaid < whole[1].debt_repaid):
                need = whole[1].debt_repaid
                if whole[1].debt_repaid >= d_bal:
                    need += need * CLEAR_MARGIN_BPS // 10_000 + 1
                short[d_asset] = max(short.get(d_asset, 0), need)
            if found is None:
                reasons.append(f"no valid amount for {cr.symbol}/{dr.symbol} "
                               f"(wallet holds {budget.get(d_asset, 0)} {dr.symbol})")
                continue
            amount, out = found
            clears = out.debt_repaid >= d_bal
            if clears and not dry:
                # Send debtToCover = max so that interest accrued by execution is covered too;
                # the wallet must hold a margin over today's debt.
                need = d_bal + d_bal * CLEAR_MARGIN_BPS // 10_000 + 1
                if budget.get(d_asset, 0) < need:
                    found = best_amount(rules, st.health_factor, st.total_debt_base, coll, debt,
                                        pair.bonus, pair.protocol_fee, min(budget.get(d_asset, 0), d_bal - 1))
                    if found is None:
                        continue
                    amount, out = found
                    clears = False
            profit = (TokenPrice(cr.price, cr.decimals).usd(out.collateral_to_liquidator)
                      - TokenPrice(dr.price, dr.decimals).usd(out.debt_repaid))
            if best is None or profit > best[0]:
                best = (profit, c_asset, d_asset, amount, out, clears)
        if best is None:
            if short and not dry:
                d_asset, need = max(short.items(), key=lambda x: self._price(x[0]).usd(x[1]))
                return no_inventory(d_asset, budget.get(d_asset, 0), need, self._price(d_asset),
                                    "too little for any liquidation the rules allow")
            why = "; ".join(dict.fromkeys(reasons)) or "no liquidatable collateral/debt pair"
            return Skip(SkipCode.NO_VALID_AMOUNT, why)
        profit, c_asset, d_asset, amount, out, clears = best
        cr, dr = self.reserves[c_asset], self.reserves[d_asset]
        label = f"{cr.symbol}/{dr.symbol}"
        details = AaveDetails(collateral=c_asset, debt=d_asset, debt_to_cover=out.debt_repaid,
                              collateral_received=out.collateral_to_liquidator, protocol_fee=out.protocol_fee,
                              clears_debt=clears, rules=self.cfg.close_factor_rules)
        expected: dict[str, int] = {}
        expected[d_asset] = expected.get(d_asset, 0) - out.debt_repaid
        expected[c_asset] = expected.get(c_asset, 0) + out.collateral_to_liquidator
        prices = {c_asset: self._price(c_asset), d_asset: self._price(d_asset)}
        if dry:
            return replace(base, label=label, value_usd=value_usd(expected, prices)), None
        arg = UINT_MAX if clears else amount
        spend = out.debt_repaid if not clears else out.debt_repaid + out.debt_repaid * CLEAR_MARGIN_BPS // 10_000 + 1
        tx = TxRequest(to=self.pool, data=POOL.fn("liquidationCall").encode(c_asset, d_asset, user, arg, False),
                       what=f"liquidationCall {label} {user}")
        need = short.get(d_asset, 0)
        return Plan(protocol=self.name, kind=PlanKind.LIQUIDATION, account=user, accounts=(user,), label=label,
                    txs=(tx,), spends=(Spend(d_asset, self.pool, spend),), expected=expected, prices=prices,
                    gas_estimate=LIQUIDATION_GAS, debt_usd=base.debt_usd, details=details,
                    shortfall=Spend(d_asset, self.pool, need) if need > spend else None)

    def _flash(self, user: str, st: UserState, base: AccountView,
               quotes: dict[tuple[str, str], Solution | Unsolved]) -> Plan | Skip:
        """liquidateAaveV3 through the executor for the pair whose quoted profit is highest."""
        assert self.swaps is not None
        price = self._price_of
        solved = {k: q for k, q in quotes.items() if isinstance(q, Solution) and q.profit > 0}
        if not solved:
            if not quotes:
                return Skip(SkipCode.NO_VALID_AMOUNT, "; ".join(self._pairs(st)[1]) or
                            "no liquidatable collateral/debt pair with a swap back to the debt")
            (c_asset, d_asset), q = max(quotes.items(),
                                        key=lambda kv: kv[1].profit if isinstance(kv[1], Solution) else -(2**255))
            skip = fx.skip_of(q, price, self.swaps, d_asset)
            assert skip is not None
            return skip
        (c_asset, d_asset), sol = max(solved.items(), key=lambda kv: self._price(kv[0][1]).usd(kv[1].profit))
        pair = next(p for p in self._pairs(st)[0] if (p.collateral, p.debt) == (c_asset, d_asset))
        cr, dr = self.reserves[c_asset], self.reserves[d_asset]
        label = f"{cr.symbol}/{dr.symbol}"
        bps = self.swaps.cfg.slippage_bps
        (swap,) = fx.executor_swaps(sol, self.swaps.cfg.router, bps)
        assert self.cfg.executor
        report = fx.report(sol, self.swaps, d_asset, price)
        data = af.calldata(sol, self.pool, user, pair, swap, fx.profit_arg(sol, d_asset, bps))
        out = af.outcome(pair, self.cfg.close_factor_rules, st.health_factor, st.total_debt_base, sol.candidate.size)
        assert out is not None
        details = AaveDetails(collateral=c_asset, debt=d_asset, debt_to_cover=sol.candidate.borrow,
                              collateral_received=out.collateral_to_liquidator, protocol_fee=out.protocol_fee,
                              clears_debt=out.debt_repaid >= pair.debt_side.balance,
                              rules=self.cfg.close_factor_rules, execution=Execution.FLASH.value, flash=report)
        tx = TxRequest(to=self.cfg.executor, data=data, what=f"liquidateAaveV3 {label} {user} via {report.route}")
        return Plan(protocol=self.name, kind=PlanKind.LIQUIDATION, account=user, accounts=(user,), label=label,
                    txs=(tx,), expected={d_asset: sol.profit}, prices={d_asset: self._price(d_asset)},
                    gas_estimate=af.FLASH_GAS, debt_usd=base.debt_usd, details=details,
                    expected_from_simulation=True)
