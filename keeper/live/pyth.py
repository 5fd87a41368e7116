"""Pull-oracle (Pyth) price shocks on a fork, by storage: no guardian-signed update is needed.

The price a Pyth contract stores for a feed id is found by probing, as ERC20 balance slots are: the
candidate mapping slots get distinct markers in one batch, getPriceUnsafe(id) tells which one it
read, every candidate is restored. Two layouts are known:

- the real Pyth (pyth-crosschain target_chains/ethereum PythState: ``mapping(bytes32 =>
  PythInternalStructs.PriceInfo) latestPriceInfo`` inside the upgradeable proxy's storage). A
  PriceInfo is two words: word 0 packs ``uint64 publishTime | int32 expo | int64 price | uint64
  conf`` from the low-order bytes up, word 1 ``int64 emaPrice | uint64 emaConf`` (the EMA shares
  publishTime and expo);
- MockPyth (@pythnetwork/pyth-sdk-solidity: ``mapping(bytes32 => PythStructs.PriceFeed)``): word 0
  the id (non-zero: the feed exists), word 1 ``int64 price | uint64 conf | int32 expo``, word 2 the
  uint publishTime, words 3 and 4 the same for the EMA price.

The shocked price (and EMA price and confidence, scaled alike) is written with a fresh publish time;
any signed update published later replaces it, as on the real chain."""
from __future__ import annotations

import enum
from dataclasses import dataclass

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from keeper.chain.client import Chain, hexint
from keeper.chain.multicall import calldata, returns
from keeper.errors import ConfigError, RpcError, StartupError
from keeper.live.fork import Shock, _symbols, _word
from keeper.protocols.base import PythFeedRef

PROBE_SLOTS = 320  # the real Pyth's mapping sits after OpenZeppelin upgradeable gaps (~slot 213)
_MARK_REAL = 0x5045_0000_0000  # publish-time markers (uint64): real layout, MockPyth layout
_MARK_MOCK = 0x4D4F_0000_0000
_U64, _U32 = 2**64 - 1, 2**32 - 1


class Layout(enum.Enum):
    PYTH = "pyth"  # PythInternalStructs.PriceInfo
    MOCK_PYTH = "mock_pyth"  # PythStructs.PriceFeed


@dataclass(frozen=True)
class PythPrice:
    price: int
    conf: int
    expo: int
    publish_time: int


@dataclass(frozen=True)
class PriceSlot:
    contract: str  # the contract whose storage holds the price
    base: int  # first word of the feed's entry
    layout: Layout


def feed_id_bytes(feed_id: str) -> bytes:
    h = feed_id.lower().removeprefix("0x")
    if len(h) != 64:
        raise ConfigError(f"not a 32-byte Pyth feed id: {feed_id!r}")
    return bytes.fromhex(h)


def entry_candidates(feed_id: str) -> list[int]:
    """keccak(id . p) for mapping slots p in 0..PROBE_SLOTS-1 (Solidity's mapping layout)."""
    fid = feed_id_bytes(feed_id)
    return [int.from_bytes(keccak(encode(["bytes32", "uint256"], [fid, p])), "big") for p in range(PROBE_SLOTS)]


def _signed(x: int, bits: int) -> int:
    x &= 2**bits - 1
    return x - 2**bits if x >> (bits - 1) else x


def pack_real(publish_time: int, expo: int, price: int, conf: int) -> int:
    """Word 0 of PythInternalStructs.PriceInfo."""
    return ((publish_time & _U64) | (expo & _U32) << 64 | (price & _U64) << 96 | (conf & _U64) << 160)


def unpack_real(word: int) -> PythPrice:
    return PythPrice(_signed(word >> 96, 64), (word >> 160) & _U64, _signed(word >> 64, 32), word & _U64)


def pack_mock(price: int, conf: int, expo: int) -> int:
    """Words 1 and 3 of PythStructs.PriceFeed (a Price's packed part)."""
    return (price & _U64) | (conf & _U64) << 64 | (expo & _U32) << 128


async def read_price(chain: Chain, pyth: str, feed_id: str, *, ema: bool = False) -> PythPrice:
    fn = "getEmaPriceUnsafe(bytes32)" if ema else "getPriceUnsafe(bytes32)"
    raw = await chain.eth_call(pyth, calldata(fn, ["bytes32"], [feed_id_bytes(feed_id)]))
    p, c, e, t = returns("int64", "uint64", "int32", "uint256")(raw)
    return PythPrice(p, c, e, t)


async def find_price_slot(chain: Chain, pyth: str, feed_id: str, reader: str | None = None) -> PriceSlot:
    """Where ``pyth``'s storage holds ``feed_id``'s price, read through ``reader`` (default: ``pyth``
    itself; a forwarder that reads ``pyth``'s price otherwise). Every candidate is restored."""
    bases = entry_candidates(feed_id)
    # Real layout: word 0 carries publishTime in its low 64 bits. MockPyth: word 2 is publishTime and
    # word 0 (the id, overwritten by the real-layout marker) is non-zero, so the feed "exists".
    slots = [*bases, *(b + 2 for b in bases)]
    marks = [pack_real(_MARK_REAL + i, -8, 1, 0) for i in range(len(bases))] + \
            [_MARK_MOCK + i for i in range(len(bases))]
    before = await chain.rpc.batch([("eth_getStorageAt", [pyth, _word(s), "latest"]) for s in slots])
    try:
        await chain.rpc.batch([("anvil_setStorageAt", [pyth, _word(s), _word(m)]) for s, m in zip(slots, marks)])
        try:
            seen = (await read_price(chain, reader or pyth, feed_id)).publish_time
        except RpcError:
            seen = -1
    finally:
        await chain.rpc.batch([("anvil_setStorageAt", [pyth, _word(s), _word(hexint(v))])
                               for s, v in zip(slots, before)])
    for mark, layout in ((_MARK_REAL, Layout.PYTH), (_MARK_MOCK, Layout.MOCK_PYTH)):
        if 0 <= seen - mark < len(bases):
            return PriceSlot(pyth, bases[seen - mark], layout)
    raise StartupError(f"Pyth contract {pyth}: getPriceUnsafe({feed_id}) does not read a price mapping of "
                       f"the real Pyth's or MockPyth's layout at slots 0-{PROBE_SLOTS - 1}")


async def write_price(chain: Chain, slot: PriceSlot, price: PythPrice, ema: PythPrice) -> None:
    """Store ``price`` and ``ema`` (publish time and expo: ``price``'s) in the probed entry."""
    if slot.layout is Layout.PYTH:
        words = {0: pack_real(price.publish_time, price.expo, price.price, price.conf),
                 1: (ema.price & _U64) | (ema.conf & _U64) << 64}
    else:
        words = {1: pack_mock(price.price, price.conf, price.expo), 2: price.publish_time,
                 3: pack_mock(ema.price, ema.conf, price.expo), 4: price.publish_time}
    await chain.rpc.batch([("anvil_setStorageAt", [slot.contract, _word(slot.base + k), _word(v)])
                           for k, v in words.items()])


@dataclass(frozen=True)
class AppliedPythShock:
    label: str  # the token symbol, or the feed id, as shocked
    feed_id: str
    pyth: str  # the Pyth contract the protocol reads
    storage: str  # the contract whose storage was written (``pyth`` itself, or the one it forwards to)
    layout: str
    pct: str
    expo: int
    before: int  # getPriceUnsafe's price before and after, read through ``pyth``
    after: int
    publish_time: int


def _scaled(shock: Shock, x: int) -> int:
    return shock.apply(x) if x >= 0 else -shock.apply(-x)


async def storage_readers(chain: Chain, pyth: str, feed_id: str) -> list[str]:
    """Contracts whose storage ``pyth``'s getPriceUnsafe(id) reads (debug_traceCall's prestateTracer):
    the Pyth contract itself, or the one a forwarder calls; [] when the node does not trace."""
    data = "0x" + calldata("getPriceUnsafe(bytes32)", ["bytes32"], [feed_id_bytes(feed_id)]).hex()
    try:
        trace = await chain.rpc.request("debug_traceCall", [{"to": pyth, "data": data}, "latest",
                                                            {"tracer": "prestateTracer"}])
    except RpcError:
        return []
    if not isinstance(trace, dict):
        return []
    return [to_checksum_address(a) for a, v in trace.items() if isinstance(v, dict) and v.get("storage")]


Written = dict[tuple[str, int], tuple[Shock, PythPrice, PythPrice]]  # (contract, entry) -> shock, before, after


async def shock_pyth_price(chain: Chain, shock: Shock, label: str, pyth: str, feed_id: str, timestamp: int,
                           storage_candidates: list[str], written: Written) -> AppliedPythShock:
    """Shock ``feed_id``'s price as ``pyth`` answers it: in its own storage, else in that of a
    contract it reads (a forwarder over another Pyth contract: the contracts a trace of the read
    shows, then ``storage_candidates``), the first whose probe finds the entry. An entry
    already in ``written`` (two contracts reading one store) is checked, not shocked twice."""
    tried = list(dict.fromkeys([pyth, *await storage_readers(chain, pyth, feed_id), *storage_candidates]))
    slot = None
    for c in tried:
        try:
            slot = await find_price_slot(chain, c, feed_id, reader=pyth)
            break
        except StartupError:
            continue
    if slot is None:
        raise StartupError(f"--price-shock {label}: found no storage slot of Pyth feed {feed_id} that {pyth} "
                           f"reads (probed {', '.join(tried)}; does it hold a price for the feed?)")
    key = (slot.contract, slot.base)
    if key in written:
        prev, cur, new = written[key]
        if prev.pct != shock.pct:
            raise ConfigError(f"--price-shock {label}: Pyth feed {feed_id} is also shocked by {prev.pct}%")
    else:
        try:
            cur = await read_price(chain, pyth, feed_id)
            ema = await read_price(chain, slot.contract, feed_id, ema=True)  # a forwarder may lack the EMA view
        except RpcError as e:
            raise StartupError(f"--price-shock {label}: {pyth} holds no price for Pyth feed {feed_id}: {e}") from None
        new = PythPrice(_scaled(shock, cur.price), shock.apply(cur.conf), cur.expo, max(timestamp, cur.publish_time))
        if new.price <= 0:
            raise ConfigError(f"--price-shock {label}: Pyth feed {feed_id} would answer {new.price}")
        await write_price(chain, slot, new, PythPrice(_scaled(shock, ema.price), shock.apply(ema.conf), ema.expo,
                                                      new.publish_time))
        written[key] = (shock, cur, new)
    seen = await read_price(chain, pyth, feed_id)
    if seen != new:
        raise StartupError(f"--price-shock {label}: {pyth} answers {seen} for Pyth feed {feed_id} after the "
                           f"shock, not {new}")
    return AppliedPythShock(label, feed_id, pyth, slot.contract, slot.layout.value, str(shock.pct), cur.expo,
                            cur.price, new.price, new.publish_time)


def is_feed_id(text: str) -> bool:
    h = text.lower().removeprefix("0x")
    return text.lower().startswith("0x") and len(h) == 64 and all(c in "0123456789abcdef" for c in h)


async def resolve_pyth(chain: Chain, refs: set[PythFeedRef],
                       shocks: list[Shock]) -> list[tuple[Shock, str, PythFeedRef]]:
    """(shock, label, Pyth feed) for every Pyth feed a shock names: by the token a protocol prices
    with it (symbol or address), or by the feed id itself."""
    tokens = sorted({r.token for r in refs if r.token})
    symbols = await _symbols(chain, tokens) if tokens else {}
    out = []
    for s in shocks:
        for r in sorted(refs, key=lambda r: (r.pyth, r.feed_id, r.token or "")):
            if is_feed_id(s.token):
                hit = r.feed_id.lower() == s.token.lower()
                label = r.feed_id
            else:
                hit = r.token is not None and s.token.lower() in (r.token.lower(), symbols[r.token].lower())
                label = symbols.get(r.token or "", s.token)
            if hit:
                out.append((s, label, r))
    return out
