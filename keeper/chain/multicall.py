"""Batched reads through Multicall3.aggregate3 (encoded and decoded with eth_abi)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak

MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
_AGGREGATE3 = keccak(text="aggregate3((address,bool,bytes)[])")[:4]


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def calldata(signature: str, types: Sequence[str] = (), args: Sequence[Any] = ()) -> bytes:
    return selector(signature) + (encode(list(types), list(args)) if types else b"")


@dataclass(frozen=True)
class Call:
    target: str
    data: bytes
    decode: Callable[[bytes], Any] | None = None  # applied to returnData on success


def returns(*types: str) -> Callable[[bytes], Any]:
    """A decoder: one type -> the value, several -> a tuple (addresses checksummed)."""
    from keeper.abi import checksummed

    def _d(data: bytes) -> Any:
        out = tuple(checksummed(t, v) for t, v in zip(types, decode(list(types), data)))
        return out[0] if len(types) == 1 else out
    return _d


class CallFailed(Exception):
    pass


def encode_aggregate3(calls: Sequence[Call], *, allow_failure: bool = True) -> bytes:
    """aggregate3 calldata; allow_failure=False makes any failing call revert the whole batch
    (for transactions: all or nothing)."""
    return _AGGREGATE3 + encode(["(address,bool,bytes)[]"], [[(c.target, allow_failure, c.data) for c in calls]])


def decode_aggregate3(calls: Sequence[Call], raw: bytes) -> list[Any]:
    (results,) = decode(["(bool,bytes)[]"], raw)
    out: list[Any] = []
    for call, (ok, data) in zip(calls, results):
        if not ok:
            out.append(CallFailed(data))
        elif call.decode is None:
            out.append(data)
        else:
            try:
                out.append(call.decode(data))
            except Exception as e:  # a contract that answered something else than the ABI says
                out.append(CallFailed(f"undecodable answer from {call.target}: {e}".encode()))
    return out
