"""The [[protocols]] entry of kind "aave_v3"."""
from __future__ import annotations

from typing import Literal

from keeper.config_types import Address, ExecutionConfig


class AaveV3Config(ExecutionConfig):
    kind: Literal["aave_v3"]
    addresses_provider: Address  # Pool and oracle are read from it
    close_factor_rules: Literal["v3.3", "v3.0"] = "v3.3"
