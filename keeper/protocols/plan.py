"""What an adapter hands the engine: a view of every account (scan, reports) and the plans to send.

- ``AccountView``: one account as ``scan`` shows it (health, debt, pair) and its ``status``: it
  leads a plan (``Planned``), another account's plan covers it (``Covered``: a batch, e.g. the
  second account of a Comet absorb), or nothing is planned (``Skip``: a code plus a message).
- ``Plan``: transactions the engine ranks, simulates, sends and records, with the accounts they
  liquidate, what they spend and what the wallet should gain. Its ``details`` are the protocol's
  own figures, for reports only: the engine never reads them.

Amounts are integers in the token's smallest unit; USD amounts are integers with 8 decimals.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any

from keeper.chain.sender import TxRequest

USD = 10**8  # USD amounts are integers with 8 decimals (Aave's base currency, Chainlink USD feeds)
JSON_SAFE_INT = 2**53  # larger integers are reported as strings (JSON readers parse numbers as doubles)


@dataclass(frozen=True)
class TokenPrice:
    price: int  # USD per whole token, 8 decimals
    decimals: int
    symbol: str = "?"

    def usd(self, amount: int) -> int:
        """Value of ``amount`` smallest units in USD (8 decimals), rounded toward zero."""
        q = abs(amount) * self.price // 10**self.decimals
        return q if amount >= 0 else -q


@dataclass(frozen=True)
class Spend:
    """The wallet must hold ``amount`` of ``token`` and let ``spender`` pull it."""
    token: str
    spender: str
    amount: int


def value_usd(amounts: Mapping[str, int], prices: Mapping[str, TokenPrice]) -> int:
    """USD value (8 dec) of token -> amount at ``prices``."""
    return sum(prices[t].usd(a) for t, a in amounts.items())


class SkipCode(StrEnum):
    """Why nothing is sent for an account or a plan. Records are deduplicated on the code, never on
    the message."""
    NOT_LIQUIDATABLE = "not_liquidatable"  # healthy
    PENDING = "pending"  # an order or a liquidation waits for the protocol to settle it
    UNREADABLE = "unreadable"  # the account's or market's state could not be read this block
    NO_PRICE = "no_price"  # no price to value it with (a feed missing from the config)
    PRICE_UPDATE_FAILED = "price_update_failed"  # signed prices could not be fetched or applied
    STALE_ORACLE = "stale_oracle"  # the protocol would refuse the price (too old)
    PAUSED = "paused"  # the protocol's liquidation (or sale) path is paused
    NO_COLLATERAL = "no_collateral"  # bad debt: nothing left to seize or buy
    NOT_FOR_SALE = "not_for_sale"  # the protocol does not sell what a liquidation frees
    MATHS_MISMATCH = "maths_mismatch"  # the keeper's maths disagree with the protocol's own view
    NO_INVENTORY = "no_inventory"  # the wallet holds too little of what the plan spends
    NO_VALID_AMOUNT = "no_valid_amount"  # no size satisfies the protocol's rules (dust, close factor, HF)
    TOO_SMALL = "too_small"  # what could be taken is worth nothing after rounding
    UNSUPPORTED = "unsupported"  # a case the adapter does not handle (e.g. an eMode price source)
    FULL_ONLY = "full_only"  # only a full liquidation would do, and it is not supported
    NOTHING_LEFT = "nothing_left"  # a re-plan found nothing left to do (spent by an earlier plan)
    GAS_PRICE_CAP = "gas_price_cap"  # above max_gas_price_gwei
    BELOW_MIN_PROFIT = "below_min_profit"  # estimated or simulated profit below min_profit_usd
    BELOW_GAS_MULTIPLE = "below_gas_multiple"  # worth less than the plan's min_gas_multiple x its gas
    SIMULATION_REVERT = "simulation_revert"  # the node says the transactions would revert
    APPROVING = "approving"  # its approvals went out alone first (a node without eth_simulateV1)
    REWARD_LOST = "reward_lost"  # a deferred reward the protocol will never pay (e.g. its oracle version timed out)
    # Flash execution (the seized collateral sold on Uniswap V3 inside the transaction):
    NO_ROUTE = "no_route"  # no pool path from the collateral to the token repaid
    NO_FLASH_LIQUIDITY = "no_flash_liquidity"  # no flash lender holds the amount to borrow
    SWAP_CANNOT_REPAY = "swap_cannot_repay"  # at every size, the sale's quote repays less than was borrowed
    LOSS_POLICY = "loss_policy"  # Gearbox's loss policy refuses this liquidator a liquidation with bad debt


@dataclass(frozen=True)
class Skip:
    code: SkipCode
    message: str  # for people: what exactly (amounts, the revert reason...)


def amount_text(amount: int, price: TokenPrice | None, token: str = "") -> str:
    """``amount`` in whole tokens with the symbol ("20,010.00 USDC"), or raw units and the address."""
    if price is None:
        return f"{amount} units of {token}"
    digits = 2 if price.decimals <= 6 else 4
    return f"{amount / 10**price.decimals:,.{digits}f} {price.symbol}"


def no_inventory(token: str, held: int, needed: int, price: TokenPrice | None, why: str = "") -> Skip:
    """SkipCode.NO_INVENTORY naming the token, what the wallet holds and what the plan needs."""
    return Skip(SkipCode.NO_INVENTORY, f"wallet holds {amount_text(held, price, token)}, needs "
                                       f"{amount_text(needed, price, token)}{': ' + why if why else ''}")


class Execution(StrEnum):
    """How a liquidation is paid: from the wallet (which keeps what it seizes), or with flash
    liquidity through the keeper's LiquidationExecutor (the collateral sold inside the transaction,
    the profit left in the repaid token)."""
    INVENTORY = "inventory"
    FLASH = "flash"


@dataclass(frozen=True)
class Modes:
    """What liquidating an account would pay in each execution mode (scan's columns). USD amounts
    are gross (gas not subtracted), 8 decimals; None when that mode has no plan (``note`` says why)."""
    execution: Execution  # the mode the protocol entry is configured for
    inventory_usd: int | None  # the wallet's token changes at the protocol's prices (collateral kept)
    inventory_gas: int
    flash_usd: int | None  # the quoted profit left in the repaid token
    flash_gas: int
    route: str | None = None  # e.g. "WETH -0.30%-> USDC"
    quoted: str | None = None  # e.g. "10.0000 WETH -> 20,890.12 USDC"
    note: str | None = None


@dataclass(frozen=True)
class AccountView:
    protocol: str
    account: str
    label: str  # e.g. "WETH/USDC", or the plan's label when planned
    health: float | None  # the protocol's health figure, for display (< 1 liquidatable)
    debt_usd: int  # USD, 8 decimals
    liquidatable: bool
    status: Skip | Covered | Planned
    # What liquidating it would be worth (gross, USD 8 dec) when nothing is planned, e.g. a healthy
    # account's best pair, for scan's profit column.
    value_usd: int | None = None
    modes: Modes | None = None  # both execution modes' figures (protocols that support flash execution)

    @property
    def skip(self) -> Skip | None:
        return self.status if isinstance(self.status, Skip) else None


class PlanKind(StrEnum):
    LIQUIDATION = "liquidation"  # one account
    BATCH = "batch"  # several accounts in one plan (``accounts`` names them all)
    BUY = "buy"  # buys collateral a protocol already seized (Comet's buyCollateral of its reserves)
    CLAIM = "claim"  # collects rewards earlier plans booked as deferred (reported under "claims")


@dataclass(frozen=True)
class Details:
    """Protocol-specific figures of a plan, for reports only. Each adapter subclasses it as a frozen
    dataclass; ``report()`` turns it into JSON (large integers as strings)."""

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = jsonable(asdict(self))
        return out


def jsonable(v: Any) -> Any:
    """``v`` for a JSON report: large integers as strings, tuples as lists, enums as their values."""
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, bool) or v is None or isinstance(v, (str, float)):
        return v
    if isinstance(v, int):
        return str(v) if abs(v) >= JSON_SAFE_INT else v
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [jsonable(x) for x in v]
    if isinstance(v, bytes):
        return "0x" + v.hex()
    return str(v)


@dataclass(frozen=True)
class Plan:
    protocol: str
    kind: PlanKind
    account: str  # recorded under: the lead account, the keeper (claim) or the market (buy)
    accounts: tuple[str, ...]  # every account it liquidates, lead first; () for claims and buys
    label: str  # e.g. "WETH/USDC", "absorb 3 + buy WETH"
    txs: tuple[TxRequest, ...]  # in order (e.g. absorb then buyCollateral)
    spends: tuple[Spend, ...] = ()
    expected: Mapping[str, int] = field(default_factory=dict)  # token -> predicted wallet delta
    prices: Mapping[str, TokenPrice] = field(default_factory=dict)  # token -> price it is valued at
    gas_estimate: int = 0  # before simulation
    debt_usd: int = 0  # the lead account's debt (USD 8 dec): ranks equal profits, larger debt first
    # Send even below min_profit_usd (an operator's explicit choice, e.g. absorbing on Comet for the
    # protocol's health); gas price caps and simulation still apply.
    force: bool = False
    # Paid later: token -> amount the protocol credits the keeper after these transactions (e.g.
    # Perennial's liquidation fee, credited at the next oracle version and claimed later). Counted in
    # gross_usd and booked in the realised profit when the plan confirms (accrual).
    deferred: Mapping[str, int] = field(default_factory=dict)
    # Collected now, booked earlier: token -> amount these transactions move from the protocol to the
    # wallet that an earlier plan already booked as deferred (a claim). Not profit again: the realised
    # profit counts only what arrives beyond it (or short of it).
    collects: Mapping[str, int] = field(default_factory=dict)
    # Send only when (gross_usd + value of collects) >= this x the simulated gas cost.
    min_gas_multiple: Decimal | None = None
    details: Details | None = None  # for reports only
    # The wallet's balance made this plan smaller than the whole liquidation, which needs ``amount``
    # of ``token``: when the smaller plan does not pay, the skip says the wallet lacks funds.
    shortfall: Spend | None = None
    # The token changes are those the simulation's Transfer logs show for the wallet (instead of
    # ``expected``): a swap inside the transaction pays what the pool gives after the block's earlier
    # trades, which the simulation runs first.
    expected_from_simulation: bool = False

    def __post_init__(self) -> None:
        if not self.txs:
            raise ValueError(f"{self.protocol} plan {self.label!r} has no transactions")
        if self.kind in (PlanKind.LIQUIDATION, PlanKind.BATCH) and (
                not self.accounts or self.accounts[0] != self.account):
            raise ValueError(f"{self.protocol} {self.kind} plan must list its accounts, lead ({self.account}) first")
        if self.kind is PlanKind.LIQUIDATION and len(self.accounts) != 1:
            raise ValueError(f"{self.protocol} liquidation plan covers {len(self.accounts)} accounts: a batch")
        missing = (set(self.expected) | set(self.deferred) | set(self.collects)) - set(self.prices)
        if missing:
            raise ValueError(f"{self.protocol} plan {self.label!r} has no price for {sorted(missing)}")

    @property
    def gross_usd(self) -> int:
        """Predicted value of the wallet's token changes (and of deferred credits) at the prices the
        protocol uses."""
        return value_usd(self.expected, self.prices) + value_usd(self.deferred, self.prices)

    @property
    def collects_usd(self) -> int:
        return value_usd(self.collects, self.prices)

    @property
    def native_spent(self) -> int:
        """Native token (wei) the transactions send (e.g. a pull-oracle update fee)."""
        return sum(t.value for t in self.txs)

    def report(self) -> dict[str, Any]:
        return self.details.report() if self.details is not None else {}


@dataclass(frozen=True)
class Covered:
    """The account is liquidated by another account's plan (a batch: ``plan.accounts`` lists it)."""
    plan: Plan
    message: str  # for reports, e.g. "absorbed in one batch with 0x..."

    @property
    def by(self) -> str:
        return self.plan.account


@dataclass(frozen=True)
class Planned:
    """The account leads ``plan`` (``plan.account``)."""
    plan: Plan
    note: str | None = None  # a remark for the operator, shown by scan (e.g. Comet's accrual note)


def batch_kind(accounts: tuple[str, ...] | list[str]) -> PlanKind:
    """LIQUIDATION for one account, BATCH for several."""
    return PlanKind.BATCH if len(accounts) > 1 else PlanKind.LIQUIDATION


@dataclass
class Assessment:
    """An adapter's answer for one block: a view of every account with debt, and the plans."""
    views: list[AccountView] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    # Accounts with debt whose views were left out (not liquidatable: Adapter.assess_liquidatable)
    healthy: int = 0

    def add(self, other: Assessment) -> Assessment:
        self.views += other.views
        self.plans += other.plans
        self.healthy += other.healthy
        return self

    @property
    def tracked(self) -> int:
        """Accounts with debt the adapter watched this block."""
        return len(self.views) + self.healthy

    def check(self) -> None:
        """Every Planned view leads one of the plans, every Covered view is listed by one (adapters'
        tests call it). ValueError otherwise."""
        ids = {id(p) for p in self.plans}
        for v in self.views:
            if isinstance(v.status, Planned) and (id(v.status.plan) not in ids or v.status.plan.account != v.account):
                raise ValueError(f"{v.protocol} {v.account} is Planned but does not lead a listed plan")
            if isinstance(v.status, Covered) and (id(v.status.plan) not in ids
                                                  or v.account not in v.status.plan.accounts):
                raise ValueError(f"{v.protocol} {v.account} is Covered by a plan that is not listed or does not "
                                 "list it")
