"""Aave V3 (and forks): discovery from Pool logs, account mirror through Multicall3, plans that
maximise profit under the configured rule set (see rules.py): the close factor, the dust rule, the
liquidation bonus of the user's eMode category (v3.0: the reserve's category bits; v3.2+: the
category's collateral bitmap). When simulation refuses a plan, the adapter offers the next one
(another pair, or a smaller amount) and does not offer the refused one again while the account's
state is unchanged. In flash mode (aave_v3.flash) the keeper's LiquidationExecutor borrows the debt
asset, calls liquidationCall and sells the collateral on Uniswap V3; the pair whose quoted profit is
highest is planned."""
from __future__ import annotations

import asyncio
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
from keeper.protocols.aave_v3.mirror import AaveMirror, ReserveAddrs
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
    no_inventory,
    value_usd,
)
from keeper.store.types import MirrorRow
from keeper.swap import execution as fx
from keeper.swap.search import Solution, Unsolved, solve

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
SETTLE_SLICE = 1_000  # deferred users re-checked between two yields to the event loop
SETTLE_SECONDS = 2.0  # after a block's plans, deferred re-checks stop after this long
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
    need: int = 0  # what the pair's whole liquidation would take from the wallet (0: the wallet is not short)

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
        check_rules(cfg.close_factor_rules)
        self.emode: dict[int, EMode] = {}  # the users' categories, read every refresh
        # account -> (state fingerprint, plans and pairs simulation refused in that state)
        self.refused: dict[str, tuple[tuple, set[tuple[str, str, int]], set[tuple[str, str]]]] = {}
        self.chain: Chain | None = None
        self.mirror: AaveMirror | None = None
        self.last_resync = -1
        self._detailed: set[str] = set()  # users whose balances _read_users read (dropped by _take)
        self.swaps = services.swaps
        self.flash = cfg.execution == Execution.FLASH
        # user -> (collateral, debt) -> this block's flash solution (flash mode, or a scan with [swap])
        self.quotes: dict[str, dict[tuple[str, str], Solution | Unsolved]] = {}

    def contracts(self) -> dict[str, str]:
        out = {"PoolAddressesProvider": self.provider, "Pool": self.pool, "AaveOracle": self.oracle}
        return out | ({"LiquidationExecutor": self.cfg.executor} if self.flash and self.cfg.executor else {})

    def tokens(self) -> set[str]:
        return set(self.reserves)

    def spenders(self) -> set[tuple[str, str]]:
        """Inventory mode repays any reserve's debt from the wallet: the Pool pulls it."""
        return set() if self.flash else {(r, self.pool) for r in self.reserves}

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
        if self.cfg.incremental:
            if self.mirror is None:
                self.mirror = AaveMirror(self.pool, self.oracle)
            for r in self.reserves.values():
                self.mirror.reserves[r.asset] = ReserveAddrs(r.asset, r.id, r.a_token, r.stable_debt, r.variable_debt)

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

    def account_keys(self) -> set[str]:
        return set(self.users)

    def restore_accounts(self, keys: set[str]) -> bool:
        for u in keys:
            self.users.setdefault(u, UserState())
        return True

    def mirror_rows(self) -> list[MirrorRow]:
        return self.mirror.rows() if self.mirror is not None else []

    def restore_mirror(self, rows: dict[str, MirrorRow], block: int) -> None:
        if self.mirror is not None:
            self.mirror.restore(rows, block)

    def forget_state(self) -> None:
        if self.mirror is not None:
            self.mirror.block = -1  # every user is read again at the next block
            self.mirror.users.clear()

    async def refresh(self, block: int, *, all_details: bool = False) -> None:
        assert self.chain
        if self.mirror is None or all_details:
            await self._load_reserves()  # configuration may change (bonus, fees, pauses)
            await self._read_users(list(self.users), block, all_details)
        else:
            await self._refresh_incremental(self.mirror, block)
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
        if not problems:
            return
        for key, result in (await solve(self.swaps, problems, block)).items():
            u, c, d = cast(tuple[str, str, str], key)
            self.quotes.setdefault(u, {})[(c, d)] = result

    async def _refresh_incremental(self, m: AaveMirror, block: int) -> None:
        """Local mirror (keeper.protocols.aave_v3.mirror), then the accounts it finds liquidatable
        (and those its maths cannot follow) read on chain before anything is planned."""
        assert self.chain
        if self.last_resync < 0:
            self.last_resync = block  # the first block reads every user anyway
        resync = block - self.last_resync >= self.cfg.resync_interval_blocks
        if resync:
            await self._load_reserves()  # new reserves, configuration changes
        touched = await m.advance(self.chain, block, self.users)
        for a, r in self.reserves.items():
            r.price, r.config = m.prices[a], m.config[a]
        # The users the mirror computed again, and those whose balances were read (the last block's
        # liquidatable ones): their states take the mirror's data (no pass over every user).
        sweep, self._detailed = touched | self._detailed, set()
        self._take(m, sweep, block)
        self._detailed = {u for u in sweep if u in self.users and u not in m.data
                          and (self.users[u].debt or self.users[u].collateral)}  # not computed yet: kept
        if resync:
            await self._resync(m, block)
            self.last_resync = block
        confirm = set(m.liquidatable()) | m.inexact_users()
        if confirm:
            local = {u: m.health(u) for u in confirm}
            await self._read_users(sorted(confirm), block, False)
            for u, hf in local.items():
                if m.exact(u) and self.users[u].health_factor != hf:
                    m.stats.confirm_mismatches += 1
                    log.warning("aave.mirror_mismatch", protocol=self.name, user=u, block=block,
                                local_hf=hf, chain_hf=self.users[u].health_factor, when="confirm")

    def _take(self, m: AaveMirror, users: set[str], block: int) -> None:
        """The mirror's account data of ``users`` into their states (balances dropped: read again
        for the liquidatable ones)."""
        for u in users:
            if u not in m.data or u not in self.users:
                continue
            st, d = self.users[u], m.data[u]
            mu = m.users[u]
            st.total_collateral_base, st.total_debt_base, st.health_factor = (
                d.total_collateral_base, d.total_debt_base, d.health_factor)
            st.config, st.emode, st.block = mu.config, mu.emode, block
            st.collateral, st.debt = {}, {}

    async def after_block(self, block: int) -> None:
        """The block's plans are sent: the users a price move deferred (not liquidatable at the new
        price, their triggers for other assets stale) are re-checked now, in slices that let the
        event loop run in between, for at most SETTLE_SECONDS (the rest waits for the next block's,
        or is re-checked before planning if another price moves first)."""
        m = self.mirror
        loop = asyncio.get_running_loop()
        end = loop.time() + SETTLE_SECONDS
        while m is not None and m.pending() and m.block == block:
            self._take(m, m.settle(SETTLE_SLICE), block)
            await asyncio.sleep(0)
            if loop.time() > end:
                break

    async def _resync(self, m: AaveMirror, block: int) -> int:
        """Compare the mirror's account data of every user with the Pool's getUserAccountData;
        log and count each mismatch and re-read those users. Returns the mismatches."""
        assert self.chain
        users = [u for u in m.users if m.exact(u)]
        fn = POOL.fn("getUserAccountData")
        res = await self.chain.multicall([Call(self.pool, fn.encode(u), fn.decode) for u in users], block)
        terms = m.terms()
        bad = []
        for u, data in zip(users, res):
            if isinstance(data, CallFailed):
                continue
            mine = m.account(u, terms)
            chain = (data[0], data[1], data[5])
            if (mine.total_collateral_base, mine.total_debt_base, mine.health_factor) != chain:
                bad.append(u)
                log.warning("aave.mirror_mismatch", protocol=self.name, user=u, block=block, when="resync",
                            local=(mine.total_collateral_base, mine.total_debt_base, mine.health_factor),
                            chain=chain)
        m.stats.resyncs += 1
        m.stats.mismatches += len(bad)
        if bad:
            await m.reread(self.chain, bad, block)
            m.recheck(set(bad))
        log.info("aave.mirror_resync", protocol=self.name, block=block, users=len(users), mismatches=len(bad))
        return len(bad)

    async def _read_users(self, users: list[str], block: int, all_details: bool) -> None:
        """getUserAccountData, bitmap and eMode of ``users`` from the Pool at ``block``; the
        balances of those with debt that are liquidatable (or of all of them, if asked)."""
        assert self.chain
        assets = list(self.reserves)
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
        self._detailed.update(u for u, _ in detail)

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
        return self._assess(budget, healthy_views=True)

    def assess_liquidatable(self, budget: Budget) -> Assessment:
        return self._assess(budget, healthy_views=False)

    def _assess(self, budget: Budget, healthy_views: bool) -> Assessment:
        out = Assessment()
        for u, st in self.users.items():
            if st.total_debt_base > 0:
                if not healthy_views and st.health_factor >= HF_ONE:
                    out.healthy += 1  # its view (what a liquidation would look like) is for scan
                    continue
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
        base = self._base(plan.account, st)
        if d.execution == Execution.FLASH.value:
            # The executor's flow was refused (the Pool, the swap or the minimum profit): the next
            # quoted pair, if any.
            self._remember(plan.account, st, (d.collateral, d.debt, 0), whole_pair=True)
            nxt = self._flash(plan.account, st, base, self.quotes.get(plan.account, {}))
            return [nxt] if isinstance(nxt, Plan) else []
        dust = any(r in refusal for r in DUST_REFUSALS)
        self._remember(plan.account, st, (d.collateral, d.debt, d.dust_margin_bps), whole_pair=not dust)
        nexts = [self._opportunity(plan.account, base, c)[1] for c in self._untried(plan.account, st, budget)]
        return [p for p in nexts if p is not None]

    def _untried(self, user: str, st: UserState, budget: Budget) -> list[Candidate]:
        """The account's candidates not refused in its current state, best first (with the dust
        margins once something was refused)."""
        keys, pairs = self._refused_here(user, st)
        found, _ = self._candidates(st, budget, margins=DUST_MARGINS_BPS if keys else ())
        fresh = [c for c in found if c.key not in keys and (c.collateral, c.debt) not in pairs]
        return sorted(fresh, key=lambda c: -c.profit)

    def _state_key(self, user: str, st: UserState) -> tuple:
        """What a refusal depends on: the oracle prices, the account's balances and, in flash mode,
        the pools' quotes for its pairs (another trade in the pool, e.g. an earlier liquidation's
        sale, can refuse a flash plan that the next block's quote makes good again)."""
        assets = sorted(set(st.collateral) | set(st.debt))
        quotes = tuple(sorted((pair, q.out, q.profit) for pair, q in self.quotes.get(user, {}).items()
                              if isinstance(q, Solution)))
        return (tuple(self.reserves[a].price for a in assets), tuple(sorted(st.collateral.items())),
                tuple(sorted(st.debt.items())), quotes)

    def _same_state(self, a: tuple, b: tuple) -> bool:
        """Same prices and quotes, same reserves; balances within STATE_TOLERANCE_BPS (interest accrues)."""
        if a[0] != b[0] or a[3] != b[3] or [k for k, _ in a[1]] != [k for k, _ in b[1]] \
                or [k for k, _ in a[2]] != [k for k, _ in b[2]]:
            return False
        pairs = list(zip(a[1], b[1], strict=True)) + list(zip(a[2], b[2], strict=True))
        return all(abs(x - y) * 10_000 <= STATE_TOLERANCE_BPS * max(x, y) for (_, x), (_, y) in pairs)

    def _refused_here(self, user: str, st: UserState) -> tuple[set[tuple[str, str, int]], set[tuple[str, str]]]:
        """Plans and pairs simulation refused for ``user`` in (about) its current state."""
        got = self.refused.get(user)
        if got is None:
            return set(), set()
        if not self._same_state(got[0], self._state_key(user, st)):
            del self.refused[user]  # the account moved: every plan may be tried again
            return set(), set()
        return got[1], got[2]

    def _remember(self, user: str, st: UserState, key: tuple[str, str, int], whole_pair: bool) -> None:
        keys, pairs = self._refused_here(user, st)
        self.refused[user] = (self._state_key(user, st), keys | {key}, pairs | ({key[:2]} if whole_pair else set()))

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
        # The inventory plan (the best untried candidate for the wallet) and the flash plan (the best
        # quoted pair): the configured mode's plan is sent, both modes' figures are shown.
        inventory = self._inventory(user, st, base, budget)
        quotes = self.quotes.get(user, {})
        flash = self._flash(user, st, base, quotes) if self.flash else None
        modes = self._modes(inventory, quotes)
        chosen = flash if self.flash else inventory
        assert chosen is not None
        if isinstance(chosen, Skip):
            return replace(base, status=chosen, modes=modes), None
        return replace(base, label=chosen.label, status=Planned(chosen), modes=modes), chosen

    def _inventory(self, user: str, st: UserState, base: AccountView, budget: Budget) -> Plan | Skip:
        """liquidationCall paid from the wallet: the best candidate simulation has not refused in
        this state; or why there is none (the wallet too short for any amount the rules allow)."""
        fresh = self._untried(user, st, budget)
        if fresh:
            plan = self._opportunity(user, base, fresh[0])[1]
            assert plan is not None
            return plan
        found, reasons = self._candidates(st, budget)
        if found:
            return Skip(SkipCode.SIMULATION_REVERT, "every valid plan was refused by simulation in this state")
        short = self._short(st, budget)
        if short:
            d_asset, need = max(short.items(), key=lambda x: self._price(x[0]).usd(x[1]))
            return no_inventory(d_asset, budget.get(d_asset, 0), need, self._price(d_asset),
                                "too little for any liquidation the rules allow")
        why = "; ".join(dict.fromkeys(reasons)) or "no liquidatable collateral/debt pair"
        return Skip(SkipCode.NO_VALID_AMOUNT, why)

    def _modes(self, inventory: Plan | Skip, quotes: dict[tuple[str, str], Solution | Unsolved]) -> Modes:
        """Both modes' figures for scan: the wallet's plan, and the best quoted flash liquidation."""
        shown = max(quotes.items(), key=lambda kv: self._price(kv[0][1]).usd(kv[1].profit)
                    if isinstance(kv[1], Solution) else -(2**255), default=None)
        debt = shown[0][1] if shown else ""
        return fx.modes(self.cfg.execution,
                        inventory_usd=inventory.gross_usd if isinstance(inventory, Plan) else None,
                        inventory_gas=LIQUIDATION_GAS, flash=shown[1] if shown else None, flash_gas=af.FLASH_GAS,
                        profit_price=self._price(debt) if debt else None, swaps=self.swaps, price=self._price_of,
                        profit_token=debt)

    def _price_of(self, token: str) -> TokenPrice | None:
        return self._price(token) if token in self.reserves else None

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

    def _pairs(self, st: UserState) -> tuple[list[af.Pair], list[str]]:
        """Every (collateral, debt) pair liquidationCall could take, with the bonus that applies
        (eMode); and why some cannot be."""
        rules = self.cfg.close_factor_rules
        pairs: list[af.Pair] = []
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

    def _short(self, st: UserState, budget: Budget) -> dict[str, int]:
        """Debt asset -> what the largest liquidation the rules allow of a pair would take from the
        wallet, where the wallet holds less (a margin over the debt when it clears it)."""
        out: dict[str, int] = {}
        for pair in self._pairs(st)[0]:
            whole = best_amount(self.cfg.close_factor_rules, st.health_factor, st.total_debt_base, pair.coll,
                                pair.debt_side, pair.bonus, pair.protocol_fee, UINT_MAX)
            if whole is None:
                continue
            need = whole[1].debt_repaid
            if need >= pair.debt_side.balance:
                need += need * CLEAR_MARGIN_BPS // 10_000 + 1
            if need > budget.get(pair.debt, 0):
                out[pair.debt] = max(out.get(pair.debt, 0), need)
        return out

    def _candidates(self, st: UserState, budget: Budget, *, dry: bool = False,
                    margins: tuple[int, ...] = ()) -> tuple[list[Candidate], list[str]]:
        """The best amount of every (collateral, debt) pair (``dry``: as much as the rules allow,
        for a scan of a healthy account), and for each margin in ``margins`` the best amount
        that leaves that much more than the dust limit; plus why pairs have none."""
        out: list[Candidate] = []
        pairs, reasons = self._pairs(st)
        short = {} if dry else self._short(st, budget)
        for pair in pairs:
            cr, dr = self.reserves[pair.collateral], self.reserves[pair.debt]
            amounts = set()
            for margin in (0, *margins):
                cand = self._pair(st, cr, dr, pair.coll.balance, pair.debt_side.balance, pair.bonus, budget, dry,
                                  margin)
                if cand is None:
                    if not margin:
                        reasons.append(f"no valid amount for {cr.symbol}/{dr.symbol} "
                                       f"(wallet holds {budget.get(dr.asset, 0)} {dr.symbol})")
                    continue
                if cand.amount not in amounts:  # a margin that changes nothing is no new plan
                    amounts.add(cand.amount)
                    out.append(replace(cand, need=short.get(dr.asset, 0)))
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
                    gas_estimate=LIQUIDATION_GAS, debt_usd=base.debt_usd, details=details,
                    shortfall=Spend(c.debt, self.pool, c.need) if c.need > spend else None)
        return replace(base, label=label, status=Planned(plan)), plan

    def _flash(self, user: str, st: UserState, base: AccountView,
               quotes: dict[tuple[str, str], Solution | Unsolved]) -> Plan | Skip:
        """liquidateAaveV3 through the executor for the pair whose quoted profit is highest (pairs
        simulation refused in this state left out)."""
        assert self.swaps is not None
        price = self._price_of
        _, refused = self._refused_here(user, st)
        quotes = {k: q for k, q in quotes.items() if k not in refused}
        solved = {k: q for k, q in quotes.items() if isinstance(q, Solution) and q.profit > 0}
        if not solved:
            if refused and not quotes:
                return Skip(SkipCode.SIMULATION_REVERT, "every quoted pair was refused by simulation in this state")
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
        rules = self.cfg.close_factor_rules
        out = af.outcome(pair, rules, st.health_factor, st.total_debt_base, sol.candidate.size)
        assert out is not None
        details = AaveDetails(
            collateral=c_asset, debt=d_asset, debt_to_cover=out.debt_repaid, debt_to_cover_arg=sol.candidate.borrow,
            collateral_received=out.collateral_to_liquidator, protocol_fee=out.protocol_fee,
            clears_debt=out.debt_repaid >= pair.debt_side.balance, liquidation_bonus=pair.bonus, emode=st.emode,
            rules=rules, leaves_bad_debt=takes_last_collateral(rules, st.total_collateral_base, pair.coll, out),
            dust_margin_bps=0, execution=Execution.FLASH.value, flash=report)
        tx = TxRequest(to=self.cfg.executor, data=data, what=f"liquidateAaveV3 {label} {user} via {report.route}")
        return Plan(protocol=self.name, kind=PlanKind.LIQUIDATION, account=user, accounts=(user,), label=label,
                    txs=(tx,), expected={d_asset: sol.profit}, prices={d_asset: self._price(d_asset)},
                    gas_estimate=af.FLASH_GAS, debt_usd=base.debt_usd, details=details,
                    expected_from_simulation=True)

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
