"""The [[protocols]] entry of kind "aave_v3"."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from keeper.config_types import Address, ProtocolConfig


class AaveV3Config(ProtocolConfig):
    """Aave V3 and its forks: one table per Pool, found through its PoolAddressesProvider."""
    EXAMPLE_ENABLED: ClassVar[bool] = True

    kind: Literal["aave_v3"]
    start_block: int = Field(
        default=0, ge=0,
        description="First block to read Supply/Borrow/Repay/Withdraw/LiquidationCall logs from (the Pool's "
                    "deployment).", examples=[16291127])
    addresses_provider: Address = Field(
        description="The market's PoolAddressesProvider; the Pool and the AaveOracle are read from it (Ethereum "
                    "mainnet Aave V3 Core market shown).", examples=["0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"])
    close_factor_rules: Literal["v3.3", "v3.0"] = Field(
        default="v3.3",
        description='Liquidation rules of the deployed Pool: "v3.3" (aave-v3-origin 3.3 and later, as of 3.7: '
                    "2000 USD thresholds, the dust rule, eMode bonus from the category's collateral bitmap) or "
                    '"v3.0" (3.0 and 3.1: 50% of the reserve\'s debt above HF 0.95, eMode from the reserve\'s '
                    "category bits). A 3.2 Pool (3.0 close factor, bitmap eMode) is neither.")
