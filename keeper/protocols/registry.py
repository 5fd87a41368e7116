"""The protocols the keeper knows: every sub-package of keeper.protocols that declares a
``PROTOCOL`` (a Protocol) in its ``__init__``. Adding a protocol adds a folder; nothing here or in
the engine names one. The config union, the adapter factory and the revert decoder's tables are
built from this registry."""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keeper.config_types import ProtocolConfig
    from keeper.protocols.base import Adapter, Services


@dataclass(frozen=True)
class Protocol:
    kind: str  # the config's ``kind`` and the folder's name
    config: type[ProtocolConfig]  # the [[protocols]] entry's model
    adapter: str  # "module:Class" of the Adapter, imported when the first one is built
    needs_pull_oracle: bool = False  # the config must have a [pull_oracle] table
    # Revert decoding: custom error signatures ("Name(type,...)"), Error(string) reasons that are
    # codes (Aave's "45" -> name), and abis/<kind>/<file>.json files whose errors are decoded too.
    errors: tuple[str, ...] = ()
    error_codes: dict[str, str] = field(default_factory=dict)
    abi_error_files: tuple[str, ...] = ()

    def build(self, cfg: ProtocolConfig, services: Services) -> Adapter:
        module, cls = self.adapter.split(":")
        adapter_cls: Any = getattr(importlib.import_module(module), cls)
        built: Adapter = adapter_cls(cfg, services)
        return built


@lru_cache(maxsize=1)
def protocols() -> dict[str, Protocol]:
    """kind -> Protocol, in folder-name order."""
    import keeper.protocols as pkg
    found: dict[str, Protocol] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not info.ispkg:
            continue
        mod = importlib.import_module(f"keeper.protocols.{info.name}")
        proto = getattr(mod, "PROTOCOL", None)
        if isinstance(proto, Protocol):
            if proto.kind != info.name:
                raise RuntimeError(f"keeper/protocols/{info.name} declares kind {proto.kind!r}")
            found[proto.kind] = proto
    return found
