"""Batched reads through Multicall3.aggregate3 (its call list and answer encoded by hand: they are
large and read every block; eth_abi for the rest)."""
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


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def _address_word(address: str) -> bytes:
    raw = bytes.fromhex(address[2:] if address[:2] in ("0x", "0X") else address)
    if len(raw) != 20:
        raise ValueError(f"not an address: {address!r}")
    return bytes(12) + raw


def encode_aggregate3(calls: Sequence[Call], *, allow_failure: bool = True) -> bytes:
    """aggregate3 calldata; allow_failure=False makes any failing call revert the whole batch
    (for transactions: all or nothing). The ABI encoding of ``(address,bool,bytes)[]`` written out
    (eth_abi's generic encoder costs milliseconds per thousand calls, on every block's reads)."""
    flag = _word(1 if allow_failure else 0)
    tuples: list[bytes] = []
    for c in calls:
        pad = -len(c.data) % 32
        tuples.append(b"".join((_address_word(c.target), flag, _word(96), _word(len(c.data)), c.data, bytes(pad))))
    heads: list[bytes] = []
    at = 32 * len(tuples)  # the tuples follow their offsets, which count from the first offset
    for t in tuples:
        heads.append(_word(at))
        at += len(t)
    return b"".join((_AGGREGATE3, _word(32), _word(len(tuples)), *heads, *tuples))


class _Short(ValueError):
    pass


def _read_results(raw: bytes) -> list[tuple[bool, bytes]]:
    """``(bool,bytes)[]`` as aggregate3 returns it, read with its offsets and lengths checked."""
    def word(at: int) -> int:
        if at + 32 > len(raw):
            raise _Short(f"aggregate3 answer of {len(raw)} bytes ends before byte {at + 32}")
        return int.from_bytes(raw[at:at + 32], "big")

    base = word(0)
    n = word(base)
    start = base + 32
    out: list[tuple[bool, bytes]] = []
    for i in range(n):
        t = start + word(start + 32 * i)
        ok = word(t)
        if ok > 1:
            raise _Short(f"aggregate3 answer: success flag {ok} is not a bool")
        d = t + word(t + 32)
        size = word(d)
        if d + 32 + size > len(raw):
            raise _Short(f"aggregate3 answer of {len(raw)} bytes ends inside a result")
        out.append((ok == 1, raw[d + 32:d + 32 + size]))
    return out


def decode_aggregate3(calls: Sequence[Call], raw: bytes) -> list[Any]:
    try:
        results = _read_results(raw)
    except _Short:  # let eth_abi say what is wrong with it
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
