"""The one small interface every protocol plugs in behind.

An adapter knows its protocol and nothing else: how to find accounts (discover), mirror their state
and the protocol's prices (refresh), and, each block, assess them: a view of every account with debt
and the plans to send (keeper.protocols.plan), which the engine ranks, simulates, sends and records
without protocol knowledge. When an earlier plan of the block spent from the same wallet balance,
the engine asks the adapter to plan again (replan).

The interface, in full:

    start(chain)                       resolve the contracts (StartupError when they do not answer)
    contracts() -> {what: address}     every contract relied on (checked for code at start-up)
    start_block                        first block discovery reads (cfg.start_block)
    discover(from_block, to_block)     read logs, return how many new accounts were found
    refresh(block, all_details=)       mirror accounts and prices at ``block``
    after_block(block)                 deferred work, once the block's plans are sent
    assess(budget) -> Assessment       views (every account with debt) + plans, sized to ``budget``
    assess_liquidatable(budget)        the same, views of liquidatable accounts only (each block)
    replan(plan, budget) -> Plan|Skip  the same plan against a smaller budget, or why not
    tokens() -> {token}                tokens plans may spend (their balances make the budget)
    spenders() -> {(token, spender)}   allowances plans need (approved once at start-up)
    pending_rewards() -> {token: amt}  credited by the protocol, not claimed yet (reports)
    liquidation_events(from, to)       liquidations anyone made in a block range (shadow mode)
    price_feeds() -> {token: {feed}}   Chainlink-style feeds it prices tokens with (fork price shocks)

Assessment rules (Assessment.check): an account a plan liquidates has a view whose status is
Planned(plan) (the plan's lead, ``plan.account``) or Covered(plan, message) (the other accounts of a
batch); a view with a Skip status carries no plan; plans that liquidate no account (claims, buys)
have no view.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from keeper.chain.client import Chain
from keeper.config_types import ProtocolConfig
from keeper.protocols.plan import (
    USD,
    AccountView,
    Assessment,
    Covered,
    Details,
    Execution,
    Modes,
    Plan,
    PlanKind,
    Planned,
    Skip,
    SkipCode,
    Spend,
    TokenPrice,
    batch_kind,
    no_inventory,
    value_usd,
)
from keeper.store.types import MirrorRow

if TYPE_CHECKING:
    from keeper.oracles.pull import PullOracle
    from keeper.swap.routing import Swaps

__all__ = ["USD", "AccountView", "Adapter", "Assessment", "Budget", "Covered", "Details", "Execution", "Modes",
           "ObservedLiquidation", "Plan", "PlanKind", "Planned", "PythFeedRef", "Services", "Skip", "SkipCode", "Spend",
           "TokenPrice",
           "batch_kind", "no_inventory",
           "value_usd"]

Budget = dict[str, int]  # token -> amount the wallet can spend
C = TypeVar("C", bound=ProtocolConfig)


@dataclass(frozen=True)
class Services:
    """What the keeper gives every adapter (one constructor shape: ``Adapter(cfg, services)``)."""
    liquidator: str  # the keeper's address: receives what liquidations pay
    pull_oracle: PullOracle | None = None  # signed prices (Pyth) when the config has [pull_oracle]
    swaps: Swaps | None = None  # Uniswap V3 routing and flash lenders when the config has [swap]


@dataclass(frozen=True)
class ObservedLiquidation:
    """A liquidation someone made on chain, read from the protocol's own event (shadow mode)."""
    protocol: str
    kind: PlanKind  # LIQUIDATION of ``account``, or BUY of collateral the protocol had seized
    account: str  # the liquidated account (a BUY: the market, as its plans are recorded)
    winner: str  # the address the protocol names as liquidator (absorber, buyer, caller)
    block: int
    tx_hash: str
    log_index: int
    # What the winner captured (USD, 8 dec) at the prices the adapter mirrored for that block: the
    # collateral seized minus the debt repaid, or the reward; None when the event does not tell.
    value_usd: int | None
    label: str = ""  # e.g. "WETH/USDC"


@dataclass(frozen=True)
class PythFeedRef:
    """A Pyth price a protocol uses (a fork rehearsal's price shocks write it in Pyth's storage)."""
    token: str | None  # the token it prices, when the protocol says (Perennial prices markets, not tokens)
    pyth: str  # the Pyth contract the protocol calls
    feed_id: str  # 0x + 64 hex digits
    # True: the protocol reads the price Pyth stores (getPriceUnsafe); False: it verifies a signed
    # update it is handed (parsePriceFeedUpdates), which a stored price does not reach.
    reads_stored: bool


class Adapter(ABC, Generic[C]):
    """One protocol deployment (a market) the keeper watches."""

    name: str  # unique in the config, e.g. "aave_v3"
    code: str = ""  # what ran on chain, filled by the devnet world for reports
    cfg: C  # the protocol's [[protocols]] entry (keeper.config)

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
        """Read logs in [from_block, to_block]; return how many new accounts were found, counting
        anything else account_keys() would now add (a market, a reward owed): 0 tells the durable
        index that account_keys() did not change."""

    @abstractmethod
    async def refresh(self, block: int, *, all_details: bool = False) -> None:
        """Mirror accounts and prices at ``block`` (details of healthy accounts only if asked)."""

    @abstractmethod
    def assess(self, budget: Budget) -> Assessment:
        """A view of every account with debt, and plans for the liquidatable ones (and claims, buys)
        sized to ``budget`` (token -> amount the wallet can spend)."""

    def assess_liquidatable(self, budget: Budget) -> Assessment:
        """What the daemon asks every block: the plans and the views of liquidatable accounts, the
        others only counted (``Assessment.healthy``). Their views (what a liquidation would look
        like) are for scan; an adapter with many accounts overrides this so that a block's work
        follows the liquidatable accounts, not every account. By default: assess(), filtered."""
        a = self.assess(budget)
        kept = [v for v in a.views if v.liquidatable]
        return Assessment(kept, a.plans, a.healthy + len(a.views) - len(kept))

    @abstractmethod
    def replan(self, plan: Plan, budget: Budget) -> Plan | Skip:
        """``plan`` made again against a smaller budget (the same accounts), or why it cannot be."""

    def alternatives(self, plan: Plan, refusal: str, budget: Budget) -> list[Plan]:
        """Simulation refused ``plan`` (``refusal``: the decoded revert): the account's next plans
        against ``budget``, best first, none already refused in the account's current state (the
        adapter remembers refusals, so that an unchanged account is not planned the same refused
        way every block). None by default."""
        return []

    def tokens(self) -> set[str]:
        """Tokens the adapter may spend from the wallet (their balances make the budget)."""
        return set()

    # ---- durable index (optional: an adapter that keeps none is discovered again from start_block) ----
    def account_keys(self) -> set[str]:
        """Every account found so far, as keys the store keeps (addresses, or the adapter's own)."""
        return set()

    def restore_accounts(self, keys: set[str]) -> bool:
        """Accounts found by an earlier run (from the store); False if the adapter cannot take them
        (discovery then reads its logs from start_block again)."""
        return False

    def mirror_rows(self) -> list[MirrorRow]:
        """The mirror's rows changed since the last call (the keeper stores them each block)."""
        return []

    def restore_mirror(self, rows: dict[str, MirrorRow], block: int) -> None:
        """Rows stored by an earlier run, valid at ``block``: the mirror continues from there."""

    def forget_state(self) -> None:
        """A reorg replaced blocks the adapter mirrored: drop what it derived from them (its mirror
        is rebuilt from the chain at the next refresh)."""

    async def after_block(self, block: int) -> None:
        """The plans of ``block`` are handed to the transaction manager: work that can wait until
        then (e.g. re-checks a price move made stale without making anyone liquidatable). None by
        default."""

    def spenders(self) -> set[tuple[str, str]]:
        """(token, spender) pairs whose allowance the adapter's plans need; the keeper approves them
        once at start-up. Plans still list what they spend: an approval missing then goes out
        with the plan."""
        return set()

    def pending_rewards(self) -> dict[str, int]:
        """Rewards the protocol has credited to the keeper and that are not claimed yet (token ->
        amount), for reports. Protocols that pay at once have none."""
        return {}

    async def liquidation_events(self, from_block: int, to_block: int) -> list[ObservedLiquidation]:
        """Liquidations anyone made in [from_block, to_block], from the protocol's own events, valued
        at the prices of the last refresh. Protocols that do not tell return []."""
        return []

    async def price_feeds(self) -> dict[str, set[str]]:
        """token -> the Chainlink-style (AggregatorV3) feeds the protocol prices it with, as resolved
        from its contracts (a fork rehearsal's price shocks replace their answers)."""
        return {}

    async def pyth_feeds(self) -> set[PythFeedRef]:
        """The Pyth prices the protocol uses, as resolved from its contracts."""
        return set()
