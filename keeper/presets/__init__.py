"""Chain presets: the real addresses and deployment blocks of each protocol's main markets on a chain,
each with its source, rendered by ``keeper init`` into a commented config file.

One module per chain (``ethereum``, ``base``, ``arbitrum``) declares ``PRESET``. A protocol that could
not be sourced for a chain is listed in ``omitted`` with the reason, never filled in by guess.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from keeper.errors import ConfigError

CHAINS = ("ethereum", "base", "arbitrum")


@dataclass(frozen=True)
class Sourced:
    value: str
    source: str


@dataclass(frozen=True)
class Market:
    """One [[protocols]] table: ``fields`` are the keys of that kind's config model."""
    kind: str
    name: str
    fields: dict[str, Any]
    source: str  # where the addresses come from
    field_sources: dict[str, str] = field(default_factory=dict)  # key -> its own source comment
    note: str = ""


@dataclass(frozen=True)
class Omitted:
    kind: str
    reason: str


@dataclass(frozen=True)
class ChainPreset:
    chain: str
    chain_id: int
    l2: str  # chain.l2: "none" | "op_stack" | "arbitrum"
    sourced_on: str  # date the sources were read
    multicall: Sourced
    native_usd_feed: Sourced
    pyth: Sourced
    markets: tuple[Market, ...]
    omitted: tuple[Omitted, ...]
    max_gas_price_gwei: str
    max_priority_fee_gwei: str
    log_chunk_blocks: int = 5_000
    hermes_url: Sourced | None = None  # needed when a market commits Pyth prices (Perennial)
    notes: tuple[str, ...] = ()

    def kinds(self) -> list[str]:
        return sorted({m.kind for m in self.markets})


def load_preset(chain: str) -> ChainPreset:
    if chain not in CHAINS:
        raise ConfigError(f"unknown chain {chain!r}: choose one of {', '.join(CHAINS)}")
    preset: ChainPreset = importlib.import_module(f"keeper.presets.{chain}").PRESET
    return preset


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} to TOML")


def _comment(text: str) -> list[str]:
    return [f"# {line}" if line else "#" for line in text.splitlines()]


def select(preset: ChainPreset, protocols: list[str] | None) -> list[Market]:
    """The preset's markets of the given kinds (all when None); a kind the chain lacks is an error
    naming why it is not in the preset."""
    if protocols is None:
        return list(preset.markets)
    from keeper.protocols.registry import protocols as registry
    known = set(registry())
    for kind in protocols:
        if kind not in known:
            raise ConfigError(f"--protocols: unknown protocol {kind!r}: choose among {', '.join(sorted(known))}")
        if kind not in preset.kinds():
            why = next((o.reason for o in preset.omitted if o.kind == kind), "not in the preset")
            raise ConfigError(f"--protocols: {kind} has no {preset.chain} preset: {why}")
    return [m for m in preset.markets if m.kind in protocols]


def render(preset: ChainPreset, markets: list[Market], *, rpc_url: str) -> str:
    """The config file: every address commented with its source; mode "dry-run" until the operator
    has rehearsed and shadowed (README, "Going live")."""
    from keeper.protocols.registry import protocols as registry
    out: list[str] = []
    out += _comment(
        f"Keeper configuration for {preset.chain} (chain id {preset.chain_id}), written by `keeper init`.\n"
        f"Addresses and deployment blocks from the sources named beside each entry, read on "
        f"{preset.sourced_on}\n(keeper/presets/{preset.chain}.py). Check them before sending anything.")
    for o in preset.omitted:
        out += _comment(f"Not in this preset: {o.kind}: {o.reason}")
    for n in preset.notes:
        out += _comment(n)
    out += ["", "[chain]"]
    out += _comment("JSON-RPC endpoint of your node for this chain (http or https).")
    out += [f"rpc_url = {_toml(rpc_url)}", f"chain_id = {preset.chain_id}"]
    out += _comment("How the chain charges for L1 data (added to every plan's gas cost).")
    out += [f"l2 = {_toml(preset.l2)}"]
    out += _comment("Block range of one eth_getLogs request (halved automatically if the node refuses).")
    out += [f"log_chunk_blocks = {preset.log_chunk_blocks}"]
    out += _comment(f"Multicall3: {preset.multicall.source}")
    out += [f"multicall_address = {_toml(preset.multicall.value)}", ""]
    out += ["[signer]"]
    out += _comment("The NAME of the environment variable holding the key (or use keystore + password_env).")
    out += ['private_key_env = "KEEPER_PRIVATE_KEY"', ""]
    out += ["[keeper]"]
    out += _comment('"dry-run" simulates and sends nothing: switch to "live" after the rehearsal and shadow run.')
    out += ['mode = "dry-run"', "min_profit_usd = 5",
            f"max_gas_price_gwei = {preset.max_gas_price_gwei}",
            f"max_priority_fee_gwei = {preset.max_priority_fee_gwei}"]
    out += _comment(f"Native token / USD, to price gas: {preset.native_usd_feed.source}")
    out += [f"native_usd_feed = {_toml(preset.native_usd_feed.value)}"]
    for m in markets:
        out += ["", "[[protocols]]"]
        out += _comment(f"Source: {m.source}")
        if m.note:
            out += _comment(m.note)
        out += [f"kind = {_toml(m.kind)}", f"name = {_toml(m.name)}"]
        for key, value in m.fields.items():
            if key in m.field_sources:
                out += _comment(f"{key}: {m.field_sources[key]}")
            out.append(f"{key} = {_toml(value)}")
    reg = registry()
    if any(reg[m.kind].needs_pull_oracle for m in markets):
        if preset.hermes_url is None:
            names = ", ".join(m.name for m in markets)
            raise ConfigError(f"the {preset.chain} preset has no pull-oracle source for {names}")
        out += ["", "[pull_oracle]"]
        out += _comment(f"Signed Pyth prices over HTTP: {preset.hermes_url.source}")
        out += ['source = "hermes"', f"url = {_toml(preset.hermes_url.value)}"]
        out += _comment(f"The chain's Pyth contract (prices an update with getUpdateFee): {preset.pyth.source}")
        out += [f"pyth = {_toml(preset.pyth.value)}"]
    else:
        out += ["", *_comment(f"The chain's Pyth contract, for a [pull_oracle] table: "
                              f"{preset.pyth.value} ({preset.pyth.source})")]
    return "\n".join(out) + "\n"
