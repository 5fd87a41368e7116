"""The [[protocols]] entry of kind "morpho_blue"."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from keeper.config_types import Address, Bytes32, ProtocolConfig


class MorphoBlueConfig(ProtocolConfig):
    """Morpho Blue: one table per Morpho singleton. Health is computed exactly as Morpho does
    (interest accrued to the next block with the market's IRM, the market's oracle price scaled
    1e36, lltv); liquidate() is sized so that it cannot revert on rounding, and bad debt is taken
    as Morpho realises it."""
    EXAMPLE_NOTE: ClassVar[str] = "Uncomment to watch Morpho Blue on Ethereum mainnet:"

    kind: Literal["morpho_blue"]
    start_block: int = Field(
        default=0, ge=0,
        description="First block to read CreateMarket, Supply, Borrow, Repay, SupplyCollateral, WithdrawCollateral "
                    "and Liquidate logs from (Morpho's deployment).", examples=[18883124])
    morpho: Address = Field(description="The Morpho Blue contract.",
                            examples=["0xBBBBBbbBBb9cC5e90e3b3Af64bdAF62C37EEFFCb"])
    markets: list[Bytes32] = Field(
        default_factory=list,
        description="Market ids (bytes32, 0x-hex) to watch; leave empty to watch every market in CreateMarket logs.")
    usd_feeds: dict[Address, Address] = Field(
        default_factory=dict,
        description="A Chainlink USD feed per loan and collateral token: Morpho's oracles price collateral in loan "
                    "units only, the keeper needs USD to rank against other protocols (USDC, WETH, WBTC shown).",
        examples=[{"0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48": "0x8fFfFfd4AfB6115b954Bd326cbe7B4BA576818f6",
                   "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2": "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419",
                   "0x2260FAC5E5542a773Aa44fBCfeDf7C193bc2C599": "0xF4030086522a5bEEa4988F8cA5B36dbC97BeE88c"}])
