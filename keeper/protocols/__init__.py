"""Protocol adapters, one module each, behind protocols.base.Adapter."""
from __future__ import annotations

from keeper.protocols.base import Adapter


def build_adapter(cfg, liquidator: str, *, pull_oracle=None) -> Adapter:
    """The adapter for one [[protocols]] entry of the config (by its ``kind``).

    ``pull_oracle`` is the keeper's one pull-oracle client (keeper.oracles.pull), shared by every
    adapter whose protocol needs signed price updates, or None when the config has none."""
    if cfg.kind == "aave_v3":
        from keeper.protocols.aave_v3 import AaveV3Adapter
        return AaveV3Adapter(cfg, liquidator)
    if cfg.kind == "compound_v3":
        from keeper.protocols.compound_v3 import CompoundV3Adapter
        return CompoundV3Adapter(cfg, liquidator)
    if cfg.kind == "morpho_blue":
        from keeper.protocols.morpho_blue import MorphoBlueAdapter
        return MorphoBlueAdapter(cfg, liquidator)
    if cfg.kind == "perennial_v2":
        from keeper.protocols.perennial_v2 import PerennialV2Adapter
        return PerennialV2Adapter(cfg, liquidator, pull_oracle)
    if cfg.kind == "gearbox_v3":
        from keeper.protocols.gearbox_v3 import GearboxV3Adapter
        return GearboxV3Adapter(cfg, liquidator, pull_oracle)
    raise ValueError(f"unknown protocol kind {cfg.kind!r}")
