"""The [[protocols]] entry of kind "perennial_v2"."""
from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from keeper.config_types import COMMENTED, Address, ProtocolConfig


class PerennialV2Config(ProtocolConfig):
    """Perennial V2 (perps). An account below maintenance is closed with the protected full close
    update(account, 0, 0, 0, 0, true) after the keeper commits a fresh pull-oracle price (it pays
    the oracle's update fee); the liquidation fee (riskParameter.liquidationFee x the version's
    settlement fee, in DSU) is credited at the next oracle version and collected with
    claimFee(keeper). Needs the [pull_oracle] table."""
    EXAMPLE_NOTE: ClassVar[str] = (
        "Uncomment and put your deployment's Market addresses, or its MarketFactory to watch all of its markets "
        "(the zero address is a placeholder the start-up check will refuse):")

    kind: Literal["perennial_v2"]
    start_block: int = Field(
        default=0, ge=0,
        description="First block to read the factory's and the markets' logs from (the factory's or markets' "
                    "creation).")
    markets: list[Address] = Field(
        default_factory=list,
        description="The Market contracts to watch (may be left out when market_factory is set).",
        examples=[["0x0000000000000000000000000000000000000000"]])
    market_factory: Address | None = Field(
        default=None,
        description="The MarketFactory: every market it created (its InstanceRegistered / MarketCreated logs from "
                    "start_block on, new ones included) is watched too, and each market above must be one of its "
                    "instances. Give markets, market_factory, or both.",
        examples=["0x..."], json_schema_extra=COMMENTED)
    dsu_usd_feed: Address | None = Field(
        default=None, description="A Chainlink feed pricing DSU in USD; leave unset to value DSU at 1 USD.",
        examples=["0x..."], json_schema_extra=COMMENTED)
    claim_min_gas_multiple: Decimal = Field(
        default=Decimal("2"), ge=0,
        description="Claim the credited rewards once they are worth this many times the claim's gas cost.")

    incremental: bool = Field(
        default=True,
        description="Mirror accounts incrementally: each account's settled position, collateral and pending "
                    "orders kept locally and re-read only when a Market log names it or a new version settles its "
                    "pending order; collateral moved to each new version with the market's accumulated values "
                    "(price PnL, funding), maintenance checked locally, liquidatable accounts confirmed on chain "
                    "(false: every account settled and re-read every block).")
    resync_interval_blocks: int = Field(
        default=300, ge=1,
        description="Every this many blocks the incremental mirror settles and reads every account from the "
                    "Market, compares it with its own, logs and counts each mismatch and keeps the Market's.")

    @model_validator(mode="after")
    def _market_source(self) -> PerennialV2Config:
        if not self.markets and self.market_factory is None:
            raise ValueError("give markets (a non-empty list of Market addresses) or market_factory")
        return self
