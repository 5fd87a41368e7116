"""Configuration from the environment (twelve-factor deployments): ``KEEPER_<TABLE>__<KEY>=value``
sets ``<key>`` of ``[<table>]`` over what the file says, ``__`` nesting deeper and a number picking
a list entry (``KEEPER_PROTOCOLS__0__START_BLOCK=19000000``; the next free index adds an entry).
Names are case-insensitive. Values are strings that the config models convert like the file's
values; a value starting with ``[`` or ``{`` is read as JSON (lists, tables). ``KEEPER_CONFIG``
names the config file. Variables without ``__`` (``KEEPER_PRIVATE_KEY``, ``KEEPER_CONFIG``) are
not keys: secrets stay in variables that the file only names.

Indexed list entries and errors that name the variable are why this is a small overlay rather
than pydantic-settings (lists of models by index are not supported there: pydantic-settings#376).
"""
from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keeper.errors import ConfigError

PREFIX = "KEEPER_"
CONFIG_VAR = "KEEPER_CONFIG"


@dataclass(frozen=True)
class Override:
    var: str  # the variable's name, as set
    path: tuple[str | int, ...]  # ("protocols", 0, "start_block")
    value: Any


def _loc(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "(top level)"


def env_overrides(environ: Mapping[str, str]) -> list[Override]:
    """The KEEPER_<TABLE>__<KEY> variables of ``environ``, sorted by name (lower indexes first)."""
    out = []
    for var in sorted(environ):
        if not var.upper().startswith(PREFIX) or "__" not in var:
            continue
        parts = var[len(PREFIX):].lower().split("__")
        if any(not p for p in parts):
            raise ConfigError(f"{var}: empty key between '__' separators")
        path = tuple(int(p) if p.isdigit() else p for p in parts)
        if isinstance(path[0], int):
            raise ConfigError(f"{var}: must start with a table name, e.g. KEEPER_CHAIN__RPC_URL")
        raw = environ[var]
        value: Any = raw
        if raw.lstrip().startswith(("[", "{")):
            try:
                value = json.loads(raw)
            except ValueError as e:
                raise ConfigError(f"{var}: a value starting with [ or {{ must be JSON: {e}") from None
        out.append(Override(var, path, value))
    return sorted(out, key=lambda o: [(0, p, "") if isinstance(p, int) else (1, 0, p) for p in o.path])


def apply_overrides(raw: dict[str, Any], overrides: list[Override]) -> dict[str, Any]:
    """A copy of the parsed file with every override written in (tables and entries created as needed)."""
    data = copy.deepcopy(raw)
    for o in overrides:
        node: Any = data
        for i, part in enumerate(o.path):
            last = i == len(o.path) - 1
            where = _loc(o.path[:i])
            if isinstance(part, int):
                if not isinstance(node, list):
                    raise ConfigError(f"{o.var}: {where} is not a list of tables")
                if part > len(node):
                    raise ConfigError(f"{o.var}: {where} has {len(node)} entries; the next one is index {len(node)}")
                if part == len(node):
                    node.append({})
            elif not isinstance(node, dict):
                raise ConfigError(f"{o.var}: {where} is not a table")
            if last:
                node[part] = o.value
            else:
                nxt = o.path[i + 1]
                if isinstance(node, dict) and part not in node:
                    node[part] = [] if isinstance(nxt, int) else {}
                node = node[part]
    return data
