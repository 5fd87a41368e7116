"""Aave V3 (and forks): discovery from Pool logs, account mirror through Multicall3, plans that
maximise profit under the configured rule set (see rules.py): the close factor, the dust rule, the
liquidation bonus of the user's eMode category (v3.0: the reserve's category bits; v3.2+: the
category's collateral bitmap). When simulation refuses a plan, the adapter offers the next one
(another pair, or a smaller amount) and does not offer the refused one again while the account's
state is unchanged."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import structlog
from eth_utils import to_checksum_address

from keeper.abi import load
from keeper.chain.client import Chain
from keeper.chain.multicall import Call, CallFailed
from keeper.chain.sender import TxRequest
from keeper.errors import StartupError
from keeper.protocols.aave_v3.config import AaveV3Config
from keeper.protocols.aave_v3.rules import (
    MIN_LEFTOVER_BASE,
    UINT_MAX,
    Outcome,
    Side,
    best_amount,
    check_rules,
    takes_last_collateral,
)
from keeper.protocols.base import (
    USD,
    AccountView,
    Adapter,
    Assessment,
    Budget,
    Details,
    ObservedLiquidation,
    Plan,
    PlanKind,
    Planned,
    Services,
    Skip,
    SkipCode,
    Spend,
    TokenPrice,
    value_usd,
)

log = structlog.get_logger()
POOL = load("aave_v3/AaveV3Pool")
POOL_V32 = load("aave_v3/AaveV3PoolV32")  # functions added from v3.2 on (eMode collateral bitmaps)
PROVIDER = load("aave_v3/AaveV3PoolAddressesProvider")
ORACLE = load("aave_v3/AaveOracle")
ERC20 = load("ERC20")

LIQUIDATION_GAS = 450_000  # estimate before simulation (a real liquidationCall: ~320k)
# Wallet margin over the debt when a plan clears a whole debt reserve with debtToCover = max:
# interest accrues between the read and the execution.
CLEAR_MARGIN_BPS = 10
HF_ONE = 10**18
# After a dust refusal, the same pair is offered again keeping these margins over the 1000 USD limit
# (the Pool saw a state the mirror had not: a price update, interest, another liquidation).
DUST_MARGINS_BPS = (100, 1_000, 5_000)
# Refusals are remembered while the account's balances move less than this (interest) and its
# prices do not move.
STATE_TOLERANCE_BPS = 10
# Refusals that say the account cannot be liquidated at all right now (healthy): no next plan.
# (custom errors from v3.4, numeric codes before: keeper.errors.decode_revert names both)
ACCOUNT_REFUSALS = ("HealthFactorNotBelowThreshold", "HEALTH_FACTOR_NOT_BELOW_THRESHOLD")
DUST_REFUSALS = ("MustNotLeaveDust", "MUST_NOT_LEAVE_DUST")


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


@dataclass(frozen=True)
class EMode:
    """An eMode category as the Pool applies it in a liquidation."""
    ltv: int
    liquidation_threshold: int
    bonus: int
    price_source: str | None  # v3.0 only: a category price oracle (0x0: none)
    collateral_bitmap: int | None  # v3.2+: reserve ids whose collateral the category covers


@dataclass(frozen=True)
class Candidate:
    """One (collateral, debt, amount) the rules accept, with its predicted figures."""
    profit: int  # USD 8 dec: collateral received minus debt repaid, at oracle prices
    collateral: str
    debt: str
    amount: int  # debtToCover the plan sends (UINT_MAX when it clears the debt)
    out: Outcome
    clears: bool
    bonus: int
    margin_bps: int = 0  # kept over the dust limit

    @property
    def key(self) -> tuple[str, str, int]:
        """What a refusal is remembered by: the pair and the margin (not the amount, which moves
        with interest)."""
        return (self.collateral, self.debt, self.margin_bps)


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


HEALTHY = Skip(SkipCode.NOT_LIQUIDATABLE, "healthy")


@dataclass(frozen=True)
class AaveDetails(Details):
    collateral: str
    debt: str
    debt_to_cover: int
    debt_to_cover_arg: int  # what liquidationCall is sent (type(uint256).max clears the debt)
    collateral_received: int
    protocol_fee: int
    clears_debt: bool
    liquidation_bonus: int
    emode: int
    rules: str
    leaves_bad_debt: bool  # v3.3: the call takes the last collateral: the Pool burns the rest of the debt
    dust_margin_bps: int  # kept over the 1000 USD dust limit (a next plan after a dust refusal)


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
        check_rules(cfg.close_factor_rules)
        self.emode: dict[int, EMode] = {}  # the users' categories, read every refresh
        # account -> (state fingerprint, plans and pairs simulation refused in that state)
        self.refused: dict[str, tuple[tuple, set[tuple[str, str, int]], set[tuple[str, str]]]] = {}
        self.chain: Chain | None = None

    def contracts(self) -> dict[str, str]:
        return {"PoolAddressesProvider": self.provider, "Pool": self.pool, "AaveOracle": self.oracle}

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
            raise RuntimeError(f"{self.name}: AaveOracle.getAssetsPrices failed at block {block}")
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

    async def _load_emode(self, categories: set[int]) -> None:
        """The users' eMode categories, read again every refresh (governance may change them)."""
        assert self.chain
        todo = sorted(categories)
        if not todo:
            self.emode = {}
            return
        if self.cfg.close_factor_rules == "v3.0":
            # v3.0: getEModeCategoryData (ltv, threshold, bonus, priceSource, label); membership is
            # the reserve's configuration bits 168-175.
            fn = POOL.fn("getEModeCategoryData")
            res = await self.chain.multicall_strict([Call(self.pool, fn.encode(c), fn.decode) for c in todo])
            self.emode = {c: EMode(d[0], d[1], d[2], d[3], None) for c, d in zip(todo, res)}
            return
        # v3.2+: getEModeCategoryCollateralConfig (ltv, threshold, bonus) applies to the collateral
        # whose reserve id is set in getEModeCategoryCollateralBitmap (bits 168-175 are unused).
        cfg_fn = POOL_V32.fn("getEModeCategoryCollateralConfig")
        bits_fn = POOL_V32.fn("getEModeCategoryCollateralBitmap")
        calls = [Call(self.pool, f.encode(c), f.decode) for c in todo for f in (cfg_fn, bits_fn)]
        res = await self.chain.multicall_strict(calls)
        self.emode = {c: EMode(res[2 * i][0], res[2 * i][1], res[2 * i][2], None, res[2 * i + 1])
                      for i, c in enumerate(todo)}

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

    def alternatives(self, plan: Plan, refusal: str, budget: Budget) -> list[Plan]:
        """Simulation refused ``plan``: remember it (while the account's state is unchanged) and
        return the next plans, best first. After a dust refusal the pair stays, with smaller
        amounts (margins over the 1000 USD limit); any other refusal of a pair (collateral not
        liquidatable, reserve paused, ...) drops the pair; a healthy account has none."""
        st = self.users.get(plan.account)
        d = plan.details
        if st is None or not isinstance(d, AaveDetails) or any(r in refusal for r in ACCOUNT_REFUSALS):
            return []
        dust = any(r in refusal for r in DUST_REFUSALS)
        self._remember(plan.account, st, (d.collateral, d.debt, d.dust_margin_bps), whole_pair=not dust)
        base = self._base(plan.account, st)
        nexts = [self._opportunity(plan.account, base, c)[1] for c in self._untried(plan.account, st, budget)]
        return [p for p in nexts if p is not None]

    def _untried(self, user: str, st: UserState, budget: Budget) -> list[Candidate]:
        """The account's candidates not refused in its current state, best first (with the dust
        margins once something was refused)."""
        keys, pairs = self._refused_here(user, st)
        found, _ = self._candidates(st, budget, margins=DUST_MARGINS_BPS if keys else ())
        fresh = [c for c in found if c.key not in keys and (c.collateral, c.debt) not in pairs]
        return sorted(fresh, key=lambda c: -c.profit)

    def _state_key(self, st: UserState) -> tuple:
        assets = sorted(set(st.collateral) | set(st.debt))
        return (tuple(self.reserves[a].price for a in assets), tuple(sorted(st.collateral.items())),
                tuple(sorted(st.debt.items())))

    def _same_state(self, a: tuple, b: tuple) -> bool:
        """Same prices, same reserves; balances within STATE_TOLERANCE_BPS (interest accrues)."""
        if a[0] != b[0] or [k for k, _ in a[1]] != [k for k, _ in b[1]] or [k for k, _ in a[2]] != [k for k, _ in b[2]]:
            return False
        pairs = list(zip(a[1], b[1])) + list(zip(a[2], b[2]))
        return all(abs(x - y) * 10_000 <= STATE_TOLERANCE_BPS * max(x, y) for (_, x), (_, y) in pairs)

    def _refused_here(self, user: str, st: UserState) -> tuple[set[tuple[str, str, int]], set[tuple[str, str]]]:
        """Plans and pairs simulation refused for ``user`` in (about) its current state."""
        got = self.refused.get(user)
        if got is None:
            return set(), set()
        if not self._same_state(got[0], self._state_key(st)):
            del self.refused[user]  # the account moved: every plan may be tried again
            return set(), set()
        return got[1], got[2]

    def _remember(self, user: str, st: UserState, key: tuple[str, str, int], whole_pair: bool) -> None:
        keys, pairs = self._refused_here(user, st)
        self.refused[user] = (self._state_key(st), keys | {key}, pairs | ({key[:2]} if whole_pair else set()))

    def _base(self, user: str, st: UserState) -> AccountView:
        hf = st.health_factor
        return AccountView(protocol=self.name, account=user, label="-", health=hf / HF_ONE,
                           debt_usd=st.total_debt_base, liquidatable=hf < HF_ONE, status=HEALTHY)

    def _plan(self, user: str, st: UserState, budget: Budget) -> tuple[AccountView, Plan | None]:
        hf = st.health_factor
        base = self._base(user, st)
        if hf >= HF_ONE:
            if not st.debt:
                return base, None
            found, _ = self._candidates(st, {}, dry=True)  # what a liquidation would look like
            return (self._opportunity(user, base, max(found, key=lambda c: c.profit), dry=True)[0]
                    if found else base), None
        if not st.debt:
            return replace(base, status=Skip(SkipCode.UNREADABLE, "no balances read")), None
        if not any(st.collateral.values()):
            return replace(base, status=Skip(SkipCode.NO_COLLATERAL, "bad debt: no collateral left to seize")), None
        fresh = self._untried(user, st, budget)
        if not fresh:
            found, reasons = self._candidates(st, budget)
            if found:
                return replace(base, status=Skip(SkipCode.SIMULATION_REVERT,
                                                 "every valid plan was refused by simulation in this state")), None
            why = "; ".join(dict.fromkeys(reasons)) or "no liquidatable collateral/debt pair"
            return replace(base, status=Skip(SkipCode.NO_VALID_AMOUNT, why)), None
        return self._opportunity(user, base, fresh[0])

    def _bonus(self, st: UserState, cr: Reserve) -> tuple[int, str | None]:
        """The liquidation bonus the Pool applies to this collateral for this user (or why the
        keeper cannot tell)."""
        em = self.emode.get(st.emode) if st.emode else None
        if em is None:
            return cr.bonus, None
        if em.collateral_bitmap is None:  # v3.0: the reserve's category bits name the user's category
            if cr.emode_category != st.emode:
                return cr.bonus, None
            if em.price_source and int(em.price_source, 16) != 0:
                return cr.bonus, "eMode category with its own price source is not supported"
            return em.bonus, None
        # v3.2+: the category covers the collateral whose reserve id is set in its collateral bitmap
        return (em.bonus if (em.collateral_bitmap >> cr.id) & 1 else cr.bonus), None

    def _candidates(self, st: UserState, budget: Budget, *, dry: bool = False,
                    margins: tuple[int, ...] = ()) -> tuple[list[Candidate], list[str]]:
        """The best amount of every (collateral, debt) pair (``dry``: as much as the rules allow,
        for a scan of a healthy account), and for each margin in ``margins`` the best amount
        that leaves that much more than the dust limit; plus why pairs have none."""
        rules = self.cfg.close_factor_rules
        out: list[Candidate] = []
        reasons: list[str] = []
        for c_asset, c_bal in st.collateral.items():
            cr = self.reserves[c_asset]
            # v3.0 refuses collateral whose reserve threshold is 0; v3.6+ checks only the user's flag.
            if c_bal == 0 or not cr.active or cr.paused or (rules == "v3.0" and cr.liquidation_threshold == 0):
                continue
            bonus, why_not = self._bonus(st, cr)
            if why_not:
                reasons.append(why_not)
                continue
            for d_asset, d_bal in st.debt.items():
                dr = self.reserves[d_asset]
                if d_bal == 0 or not dr.active or dr.paused or cr.price == 0 or dr.price == 0:
                    continue
                amounts = set()
                for margin in (0, *margins):
                    cand = self._pair(st, cr, dr, c_bal, d_bal, bonus, budget, dry, margin)
                    if cand is None:
                        if not margin:
                            reasons.append(f"no valid amount for {cr.symbol}/{dr.symbol} "
                                           f"(wallet holds {budget.get(d_asset, 0)} {dr.symbol})")
                        continue
                    if cand.amount not in amounts:  # a margin that changes nothing is no new plan
                        amounts.add(cand.amount)
                        out.append(cand)
        return out, reasons

    def _pair(self, st: UserState, cr: Reserve, dr: Reserve, c_bal: int, d_bal: int, bonus: int,
              budget: Budget, dry: bool, margin: int) -> Candidate | None:
        rules = self.cfg.close_factor_rules
        coll = Side(cr.price, cr.decimals, c_bal)
        debt = Side(dr.price, dr.decimals, d_bal)
        floor = MIN_LEFTOVER_BASE * (10_000 + margin) // 10_000
        held = budget.get(dr.asset, 0)
        # As much as the rules allow if we are only looking (scan of a healthy account).
        wallet = UINT_MAX if dry else held

        def best(cap: int) -> tuple[int, Outcome] | None:
            return best_amount(rules, st.health_factor, st.total_debt_base, coll, debt, bonus,
                               cr.protocol_fee, cap, min_leftover=floor)

        found = best(wallet)
        if found is None:
            return None
        amount, out = found
        clears = out.debt_repaid >= d_bal
        if clears and not dry and held < d_bal + d_bal * CLEAR_MARGIN_BPS // 10_000 + 1:
            # Sending debtToCover = max covers the interest accrued by execution too, but the
            # wallet must hold a margin over today's debt; else repay less than all of it.
            found = best(min(held, d_bal - 1))
            if found is None:
                return None
            amount, out = found
            clears = False
        profit = (TokenPrice(cr.price, cr.decimals).usd(out.collateral_to_liquidator)
                  - TokenPrice(dr.price, dr.decimals).usd(out.debt_repaid))
        return Candidate(profit, cr.asset, dr.asset, UINT_MAX if clears else amount, out, clears, bonus, margin)

    def _opportunity(self, user: str, base: AccountView, c: Candidate,
                     dry: bool = False) -> tuple[AccountView, Plan | None]:
        st = self.users[user]
        cr, dr = self.reserves[c.collateral], self.reserves[c.debt]
        out = c.out
        label = f"{cr.symbol}/{dr.symbol}"
        coll = Side(cr.price, cr.decimals, st.collateral[c.collateral])
        rules = self.cfg.close_factor_rules
        details = AaveDetails(
            collateral=c.collateral, debt=c.debt, debt_to_cover=out.debt_repaid, debt_to_cover_arg=c.amount,
            collateral_received=out.collateral_to_liquidator, protocol_fee=out.protocol_fee, clears_debt=c.clears,
            liquidation_bonus=c.bonus, emode=st.emode, rules=rules,
            leaves_bad_debt=takes_last_collateral(rules, st.total_collateral_base, coll, out),
            dust_margin_bps=c.margin_bps)
        expected: dict[str, int] = {}
        expected[c.debt] = expected.get(c.debt, 0) - out.debt_repaid
        expected[c.collateral] = expected.get(c.collateral, 0) + out.collateral_to_liquidator
        prices = {c.collateral: self._price(c.collateral), c.debt: self._price(c.debt)}
        if dry:
            return replace(base, label=label, value_usd=value_usd(expected, prices)), None
        spend = out.debt_repaid + (out.debt_repaid * CLEAR_MARGIN_BPS // 10_000 + 1 if c.clears else 0)
        tx = TxRequest(to=self.pool,
                       data=POOL.fn("liquidationCall").encode(c.collateral, c.debt, user, c.amount, False),
                       what=f"liquidationCall {label} {user}")
        plan = Plan(protocol=self.name, kind=PlanKind.LIQUIDATION, account=user, accounts=(user,), label=label,
                    txs=(tx,), spends=(Spend(c.debt, self.pool, spend),), expected=expected, prices=prices,
                    gas_estimate=LIQUIDATION_GAS, debt_usd=base.debt_usd, details=details)
        return replace(base, label=label, status=Planned(plan)), plan

    # ---- shadow mode and fork rehearsals ------------------------------------------------------------
    async def liquidation_events(self, from_block: int, to_block: int) -> list[ObservedLiquidation]:
        """Pool LiquidationCall events; value = collateral to the liquidator (the event's amount is net
        of the protocol fee) minus the debt covered, at the oracle prices of the last refresh."""
        assert self.chain
        ev = POOL.event("LiquidationCall")
        out = []
        for lg in await self.chain.get_logs(self.pool, [[ev.topic]], from_block, to_block):
            e = ev.decode(lg.topics, lg.data)
            c, d = self.reserves.get(e["collateralAsset"]), self.reserves.get(e["debtAsset"])
            value = None if c is None or d is None else (
                self._price(c.asset).usd(e["liquidatedCollateralAmount"]) - self._price(d.asset).usd(e["debtToCover"]))
            out.append(ObservedLiquidation(self.name, PlanKind.LIQUIDATION, e["user"], e["liquidator"], lg.block_number,
                                           lg.tx_hash, lg.log_index, value,
                                           f"{c.symbol if c else '?'}/{d.symbol if d else '?'}"))
        return out

    async def price_feeds(self) -> dict[str, set[str]]:
        """Each reserve's source in the AaveOracle (getSourceOfAsset)."""
        assert self.chain
        fn = ORACLE.fn("getSourceOfAsset")
        assets = list(self.reserves)
        res = await self.chain.multicall([Call(self.oracle, fn.encode(a), fn.decode) for a in assets])
        return {a: {f} for a, f in zip(assets, res) if isinstance(f, str) and int(f, 16)}
