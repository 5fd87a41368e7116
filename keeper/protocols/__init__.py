"""Protocol adapters: one folder each (keeper/protocols/<kind>/), behind protocols.base.Adapter,
found by protocols.registry."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keeper.config_types import ProtocolConfig
    from keeper.protocols.base import Adapter, Services


def build_adapter(cfg: ProtocolConfig, services: Services) -> Adapter:
    """The adapter for one [[protocols]] entry of the config (by its ``kind``)."""
    from keeper.protocols.registry import protocols
    reg = protocols()
    if cfg.kind not in reg:
        raise ValueError(f"unknown protocol kind {cfg.kind!r}; known: {sorted(reg)}")
    return reg[cfg.kind].build(cfg, services)
