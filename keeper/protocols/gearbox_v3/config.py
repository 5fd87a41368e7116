"""The [[protocols]] entry of kind "gearbox_v3"."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from keeper.config_types import Address, ExecutionConfig


class GearboxV3Config(ExecutionConfig):
    kind: Literal["gearbox_v3"]
    credit_managers: list[Address] = Field(min_length=1)  # each CreditManagerV3 (facade read from it)
    # Partial liquidation must leave the account at HF >= 1; aim this far above it (basis points)
    # so that interest accrued between simulation and inclusion cannot make it revert.
    target_hf_margin_bps: int = Field(default=10, ge=0, le=5_000)
    # minSeizedAmount = the predicted seizure less this (basis points): the oracle price may move
    # between simulation and inclusion; beyond it the facade reverts SeizedLessThanRequiredException.
    seize_slippage_bps: int = Field(default=10, ge=0, le=1_000)
    full_liquidation: bool = Field(
        default=True, description="also plan full liquidations (liquidateCreditAccount) and keep the more profitable "
                                  "of the partial and the full one; false: partial liquidations only, and an account "
                                  "only a full liquidation can resolve is reported, not sent")
