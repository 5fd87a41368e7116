"""The one small interface every protocol plugs in behind.

An adapter knows its protocol and nothing else: how to find accounts (discover), mirror their state
and the protocol's prices (refresh), and turn a liquidatable account into a plan (opportunities /
replan) that the engine can rank, simulate, send and record without protocol knowledge.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING

from keeper.chain.client import Chain
from keeper.chain.sender import TxRequest

if TYPE_CHECKING:
    from keeper.oracles.pull import PullOracle

USD = 10**8  # USD amounts are integers with 8 decimals (Aave's base currency, Chainlink USD feeds)


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


@dataclass(frozen=True)
class Opportunity:
    protocol: str
    account: str
    label: str  # e.g. "WETH/USDC": the chosen (collateral, debt) pair
    health: float | None  # protocol's health figure for display (< 1 liquidatable)
    debt_usd: int  # 8 decimals
    liquidatable: bool
    reason: str | None = None  # why nothing is planned (not liquidatable, no inventory, ...)
    txs: tuple[TxRequest, ...] = ()  # the liquidation, in order (e.g. absorb then buyCollateral)
    spends: tuple[Spend, ...] = ()
    expected: dict[str, int] = field(default_factory=dict)  # token -> predicted wallet delta
    prices: dict[str, TokenPrice] = field(default_factory=dict)  # token -> price used to value it
    gas_estimate: int = 0  # before simulation
    # Send even below min_profit_usd (an operator's explicit choice, e.g. absorbing on Comet for
    # the protocol's health); gas price caps and simulation still apply.
    force: bool = False
    details: dict = field(default_factory=dict)  # protocol-specific figures for reports
    # Paid later: token -> amount the protocol credits the keeper after these transactions (e.g.
    # Perennial's liquidation fee, credited at the next oracle version and claimed later). Counted
    # in gross_usd and booked in the realised profit when the plan confirms (accrual).
    deferred: dict[str, int] = field(default_factory=dict)
    # Collected now, booked earlier: token -> amount these transactions move from the protocol to
    # the wallet that an earlier plan already booked as deferred (a claim). Not profit again: the
    # realised profit counts only what arrives beyond it (or short of it).
    collects: dict[str, int] = field(default_factory=dict)
    # Send only when (gross_usd + value of collects) >= this x the simulated gas cost.
    min_gas_multiple: Decimal | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.protocol, self.account)

    @property
    def gross_usd(self) -> int:
        """Predicted value of the wallet's token changes (and of deferred credits) at the prices the
        protocol uses."""
        return (sum(self.prices[t].usd(d) for t, d in self.expected.items())
                + sum(self.prices[t].usd(d) for t, d in self.deferred.items()))

    @property
    def collects_usd(self) -> int:
        return sum(self.prices[t].usd(d) for t, d in self.collects.items())

    @property
    def native_spent(self) -> int:
        """Native token (wei) the transactions send (e.g. a pull-oracle update fee)."""
        return sum(t.value for t in self.txs)

    @property
    def planned(self) -> bool:
        return bool(self.txs)

    def skip(self, reason: str) -> "Opportunity":
        return replace(self, reason=reason, txs=(), spends=(), expected={}, deferred={}, collects={})


@dataclass(frozen=True)
class Services:
    """What the keeper gives every adapter (one constructor shape: ``Adapter(cfg, services)``)."""
    liquidator: str  # the keeper's address: receives what liquidations pay
    pull_oracle: "PullOracle | None" = None  # signed prices (Pyth) when the config has [pull_oracle]


class Adapter(ABC):
    """One protocol deployment (a market) the keeper watches."""

    name: str  # unique in the config, e.g. "aave_v3"
    code: str = ""  # what ran on chain, filled by the devnet world for reports
    cfg: object  # the protocol's [[protocols]] entry (keeper.config)

    @abstractmethod
    async def start(self, chain: Chain) -> None:
        """Resolve the protocol's contracts from the configured addresses."""

    @abstractmethod
    def contracts(self) -> dict[str, str]:
        """Every contract address the adapter relies on (checked for code at start-up)."""

    @property
    def start_block(self) -> int:
        """First block whose logs discovery reads."""
        return self.cfg.start_block

    @abstractmethod
    async def discover(self, from_block: int, to_block: int) -> int:
        """Read logs in [from_block, to_block]; return how many new accounts were found."""

    @abstractmethod
    async def refresh(self, block: int, *, all_details: bool = False) -> None:
        """Mirror accounts and prices at ``block`` (details of healthy accounts only if asked)."""

    @abstractmethod
    def opportunities(self, budget: dict[str, int]) -> list[Opportunity]:
        """Every account with debt; liquidatable ones carry a plan sized to ``budget``
        (token -> amount the wallet can spend)."""

    @abstractmethod
    def replan(self, opp: Opportunity, budget: dict[str, int]) -> Opportunity:
        """The same account planned again against a smaller budget."""

    def alternatives(self, opp: Opportunity, refusal: str, budget: dict[str, int]) -> list[Opportunity]:
        """Simulation refused ``opp`` (``refusal``: the decoded revert): the account's next plans
        against ``budget``, best first, none already refused in the account's current state (the
        adapter remembers refusals, so that an unchanged account is not planned the same refused
        way every block). None by default."""
        return []

    def tokens(self) -> set[str]:
        """Tokens the adapter may spend from the wallet (their balances make the budget)."""
        return set()

    def pending_rewards(self) -> dict[str, int]:
        """Rewards the protocol has credited to the keeper and that are not claimed yet (token ->
        amount), for reports. Protocols that pay at once have none."""
        return {}
