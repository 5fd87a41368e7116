"""The [[protocols]] entry of kind "morpho_blue"."""
from __future__ import annotations

from typing import Literal

from keeper.config_types import Address, Bytes32, ExecutionConfig


class MorphoBlueConfig(ExecutionConfig):
    kind: Literal["morpho_blue"]
    morpho: Address  # the Morpho Blue singleton
    # Market ids to watch; empty = every market found in CreateMarket logs from start_block.
    markets: list[Bytes32] = []
    # token -> Chainlink USD feed, to value seized collateral and repaid loan tokens in USD
    # (Morpho's own oracles price collateral in loan-token units only).
    usd_feeds: dict[Address, Address] = {}
