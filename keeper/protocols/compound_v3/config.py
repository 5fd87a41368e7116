"""The [[protocols]] entry of kind "compound_v3"."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from keeper.config_types import Address, ExecutionConfig


class CompoundV3Config(ExecutionConfig):
    kind: Literal["compound_v3"]
    comet: Address  # the market's Comet proxy (e.g. cUSDCv3)
    # Absorb liquidatable accounts even when buying their collateral cannot pay for the gas
    # (Comet pays absorbers nothing; the protocol's health is the only gain).
    absorb_without_profit: bool = False
    buy_slippage_bps: int = Field(default=50, ge=0, le=10_000)  # buyCollateral minAmount below the quote
    max_absorb_batch: int = Field(default=10, ge=1)  # accounts per absorb() call
