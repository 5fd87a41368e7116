"""Protocol adapters, one module each, behind protocols.base.Adapter."""
from __future__ import annotations

from keeper.protocols.base import Adapter


def build_adapter(cfg, liquidator: str) -> Adapter:
    """The adapter for one [[protocols]] entry of the config (by its ``kind``)."""
    if cfg.kind == "aave_v3":
        from keeper.protocols.aave_v3 import AaveV3Adapter
        return AaveV3Adapter(cfg, liquidator)
    if cfg.kind == "compound_v3":
        from keeper.protocols.compound_v3 import CompoundV3Adapter
        return CompoundV3Adapter(cfg, liquidator)
    raise ValueError(f"unknown protocol kind {cfg.kind!r}")
