"""The real contracts' ABIs shipped in abis/, turned into eth_abi encoders and decoders.

Hot paths build calldata once with eth_abi (no web3 contract layer)."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import decode, encode
from eth_abi.grammar import ABIType, BasicType, TupleType, parse
from eth_utils import keccak, to_checksum_address


def _abi_dir() -> Path:
    """abis/ as shipped inside the wheel (the package data ``keeper.abis``, next to this module), or
    the checkout's top-level abis/ when running from the repository (an editable install)."""
    here = Path(__file__).resolve().parent
    shipped = here / "abis"
    return shipped if (shipped / "common").is_dir() else here.parent / "abis"


ABI_DIR = _abi_dir()


def checksummed(type_str: str, value: Any) -> Any:
    """Decoded value with every `address` in EIP-55 form (eth_abi returns lower case), so that
    addresses from calls, logs and config compare equal."""
    return _walk(parse(type_str), value)


def _walk(t: ABIType, value: Any) -> Any:
    if t.arrlist:
        inner = t.item_type
        return [_walk(inner, v) for v in value]
    if isinstance(t, TupleType):
        return tuple(_walk(c, v) for c, v in zip(t.components, value))
    if isinstance(t, BasicType) and t.base == "address":
        return to_checksum_address(value)
    return value


def _type(param: dict) -> str:
    t = param["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_type(c) for c in param["components"]) + ")" + t[len("tuple"):]
    return t


@dataclass(frozen=True)
class Function:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.inputs)})"

    @property
    def selector(self) -> bytes:
        return keccak(text=self.signature)[:4]

    def encode(self, *args: Any) -> bytes:
        return self.selector + encode(list(self.inputs), list(args))

    def decode(self, data: bytes) -> Any:
        out = tuple(checksummed(t, v) for t, v in zip(self.outputs, decode(list(self.outputs), data)))
        return out[0] if len(self.outputs) == 1 else out

    @property
    def decoder(self) -> Callable[[bytes], Any]:
        return self.decode


@dataclass(frozen=True)
class Event:
    name: str
    inputs: tuple[tuple[str, str, bool], ...]  # (name, type, indexed)

    @property
    def topic(self) -> str:
        sig = f"{self.name}({','.join(t for _, t, _ in self.inputs)})"
        return "0x" + keccak(text=sig).hex()

    def decode(self, topics: list[str], data: bytes) -> dict[str, Any]:
        """Indexed fields from topics[1:], the rest from data."""
        out: dict[str, Any] = {}
        plain = [(n, t) for n, t, idx in self.inputs if not idx]
        values = decode([t for _, t in plain], data) if plain else ()
        it = iter(topics[1:])
        vi = iter(values)
        for n, t, idx in self.inputs:
            if idx:
                raw = bytes.fromhex(next(it)[2:])
                out[n] = checksummed(t, decode([t], raw)[0])
            else:
                out[n] = checksummed(t, next(vi))
        return out


class Abi:
    def __init__(self, entries: list[dict]):
        self.functions: dict[str, Function] = {}
        self.events: dict[str, Event] = {}
        for e in entries:
            if e["type"] == "function":
                self.functions[e["name"]] = Function(
                    e["name"], tuple(_type(p) for p in e["inputs"]), tuple(_type(p) for p in e["outputs"]))
            elif e["type"] == "event":
                self.events[e["name"]] = Event(
                    e["name"], tuple((p["name"], _type(p), p.get("indexed", False)) for p in e["inputs"]))

    def fn(self, name: str) -> Function:
        return self.functions[name]

    def event(self, name: str) -> Event:
        return self.events[name]


@cache
def load(name: str) -> Abi:
    """``name`` is "<protocol>/<Contract>" (abis/<protocol>/<Contract>.json) or, for what every
    protocol shares (ERC20, Chainlink, Pyth), a plain "<Contract>" from abis/common."""
    return Abi(load_json(name))


def load_json(name: str) -> list[dict[str, Any]]:
    path = ABI_DIR / (f"{name}.json" if "/" in name else f"common/{name}.json")
    data: list[dict[str, Any]] = json.loads(path.read_text())
    return data
