"""The [[protocols]] entry of kind "perennial_v2"."""
from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator

from keeper.config_types import Address, ProtocolConfig


class PerennialV2Config(ProtocolConfig):
    kind: Literal["perennial_v2"]
    markets: list[Address] = []  # Market contracts to watch
    # The MarketFactory: every market it created (its creation logs from start_block) is watched
    # too, and each of `markets` must be one of its instances. Give markets, this, or both.
    market_factory: Address | None = None
    dsu_usd_feed: Address | None = None  # Chainlink feed for DSU; None = valued at 1 USD
    # Claim accrued liquidation rewards once they exceed this many times the claim's gas cost.
    claim_min_gas_multiple: Decimal = Field(default=Decimal("2"), ge=0)

    @model_validator(mode="after")
    def _market_source(self):
        if not self.markets and self.market_factory is None:
            raise ValueError("give markets (a non-empty list of Market addresses) or market_factory")
        return self
