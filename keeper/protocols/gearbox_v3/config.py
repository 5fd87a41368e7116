"""The [[protocols]] entry of kind "gearbox_v3"."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from keeper.config_types import Address, ProtocolConfig


class GearboxV3Config(ProtocolConfig):
    """Gearbox V3 (leveraged credit accounts). An unhealthy account is partially liquidated with
    partiallyLiquidateCreditAccount in inventory mode (the wallet holds the underlying): the keeper
    picks the collateral token and the repaid amount that maximise profit while leaving the account
    at HF >= 1, as the facade requires. An account only a full liquidation can resolve is reported,
    not sent."""
    EXAMPLE_NOTE: ClassVar[str] = (
        "Uncomment and put your CreditManagerV3 addresses (the zero address is a placeholder):")

    kind: Literal["gearbox_v3"]
    start_block: int = Field(
        default=0, ge=0,
        description="First block to read the facade's Open/Close/Liquidate/PartiallyLiquidate logs from.")
    credit_managers: list[Address] = Field(
        min_length=1,
        description="Each CreditManagerV3; its facade, pool, underlying and price oracle are read from it.",
        examples=[["0x0000000000000000000000000000000000000000"]])
    target_hf_margin_bps: int = Field(
        default=10, ge=0, le=5_000,
        description="Aim this many basis points above HF 1 after a partial liquidation (the facade requires HF >= 1 "
                    "and interest accrues between simulation and inclusion).")
    seize_slippage_bps: int = Field(
        default=10, ge=0, le=1_000,
        description="minSeizedAmount = the predicted seizure less this many basis points (the oracle price may "
                    "move before inclusion; beyond it the facade reverts SeizedLessThanRequiredException).")
