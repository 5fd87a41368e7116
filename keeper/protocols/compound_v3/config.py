"""The [[protocols]] entry of kind "compound_v3"."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from keeper.config_types import NAME_DESCRIPTION, Address, ProtocolConfig


class CompoundV3Config(ProtocolConfig):
    """Compound III (Comet): one table per Comet market. Comet pays absorbers nothing; the keeper
    absorb()s liquidatable accounts in batches and profits by buying the absorbed collateral at the
    store-front discount with buyCollateral(), which Comet allows only while getReserves() is below
    targetReserves(). Values are at Comet's own oracle prices (getPrice: USD with 8 decimals on USD
    markets)."""
    EXAMPLE_NOTE: ClassVar[str] = "Uncomment to watch cUSDCv3 on Ethereum mainnet:"

    kind: Literal["compound_v3"]
    name: str = Field(default="", description=NAME_DESCRIPTION, examples=["compound_v3_usdc"])
    start_block: int = Field(
        default=0, ge=0,
        description="First block to read Withdraw/SupplyCollateral/WithdrawCollateral/TransferCollateral/"
                    "AbsorbDebt logs from (the proxy's deployment).", examples=[15331586])
    comet: Address = Field(
        description="The Comet proxy of the market (cUSDCv3 on mainnet shown); the base token, its price feed and "
                    "every collateral's AssetInfo are read from it.",
        examples=["0xc3d688B66703497DAA19211EEdff47f25384cdc3"])
    absorb_without_profit: bool = Field(
        default=False,
        description="Absorb even when buying the freed collateral cannot pay for the gas, or when collateral is not "
                    "for sale (reserves at or above targetReserves) or the wallet holds no base token to buy it: "
                    "the protocol's health is then the only gain. Such sends ignore min_profit_usd (gas caps still "
                    "apply).")
    buy_slippage_bps: int = Field(
        default=50, ge=0, le=10_000,
        description="buyCollateral's minAmount: the quoted collateral less this many basis points (0..10000).")
    max_absorb_batch: int = Field(
        default=10, ge=1,
        description="At most this many accounts in one absorb(keeper, accounts) call (one gas overhead for all).")
