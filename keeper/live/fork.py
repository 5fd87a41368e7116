"""What a fork rehearsal changes on its own Anvil fork, never on the real chain: the keeper's
balances (native with anvil_setBalance, ERC20 by writing the holder's balance slot) and price
shocks (a Chainlink-style aggregator replaced by ShockAggregator answering the shocked price)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from eth_abi import encode
from eth_utils import is_hex_address, keccak, to_checksum_address

from keeper.chain.client import Chain, hexint
from keeper.chain.multicall import Call, calldata, returns
from keeper.errors import ConfigError, RpcError, StartupError
from keeper.live import aggregator

# Candidate slots of an ERC20's balance mapping: mapping declared at slot 0..PROBE_SLOTS-1, with
# Solidity's key layout keccak(holder . slot) or Vyper's keccak(slot . holder); and OpenZeppelin 5's
# namespaced ERC20Upgradeable storage (ERC-7201 "openzeppelin.storage.ERC20": _balances first).
PROBE_SLOTS = 100
OZ_ERC20_NAMESPACE = 0x52C63247E1F47DB19D5CE0460030C497F067CA4CEBF71BA98EEADABE20BACE00
_MARKER = 0x4B45455045520000000000000000  # probe values: this + candidate index


def _word(x: int) -> str:
    return "0x" + x.to_bytes(32, "big").hex()


def balance_slot_candidates(holder: str) -> list[int]:
    out = []
    for i in range(PROBE_SLOTS):
        out.append(int.from_bytes(keccak(encode(["address", "uint256"], [holder, i])), "big"))
        out.append(int.from_bytes(keccak(encode(["uint256", "address"], [i, holder])), "big"))
    out.append(int.from_bytes(keccak(encode(["address", "uint256"], [holder, OZ_ERC20_NAMESPACE])), "big"))
    return out


async def _balance(chain: Chain, token: str, holder: str) -> int:
    raw = await chain.eth_call(token, calldata("balanceOf(address)", ["address"], [holder]))
    value: int = returns("uint256")(raw)
    return value


async def find_balance_slot(chain: Chain, token: str, holder: str) -> int:
    """The storage slot holding ``holder``'s balance of ``token``: every candidate is written with a
    distinct marker at once, balanceOf tells which one it read, then every candidate is restored."""
    slots = balance_slot_candidates(holder)
    before = await chain.rpc.batch([("eth_getStorageAt", [token, _word(s), "latest"]) for s in slots])
    try:
        await chain.rpc.batch([("anvil_setStorageAt", [token, _word(s), _word(_MARKER + i)])
                               for i, s in enumerate(slots)])
        try:
            seen = await _balance(chain, token, holder)
        except RpcError:
            seen = -1
    finally:
        await chain.rpc.batch([("anvil_setStorageAt", [token, _word(s), _word(hexint(v))])
                               for s, v in zip(slots, before)])
    i = seen - _MARKER
    if not 0 <= i < len(slots):
        raise StartupError(f"cannot fund token {token}: its balanceOf does not read a plain balance mapping "
                           f"(slots 0-{PROBE_SLOTS - 1}, Solidity or Vyper layout, or OpenZeppelin's ERC-7201 "
                           "namespace; a rebasing or proxied-balance token?)")
    return slots[i]


async def set_erc20_balance(chain: Chain, token: str, holder: str, amount: int) -> None:
    """Write ``holder``'s balance of ``token`` (the total supply is left as it is) and check it."""
    slot = await find_balance_slot(chain, token, holder)
    await chain.rpc.request("anvil_setStorageAt", [token, _word(slot), _word(amount)])
    got = await _balance(chain, token, holder)
    if got != amount:
        raise StartupError(f"funding {token}: wrote {amount} to its balance slot, balanceOf answers {got}")


async def set_native_balance(chain: Chain, holder: str, amount: int) -> None:
    await chain.rpc.request("anvil_setBalance", [holder, hex(amount)])


# ---- price shocks ------------------------------------------------------------------------------------
_SHOCK = re.compile(r"^\s*([^=\s]+)\s*=\s*([+-]?\d+(?:\.\d+)?)\s*%?\s*$")


@dataclass(frozen=True)
class Shock:
    token: str  # a symbol (case-insensitive) or a token address, as given
    pct: Decimal  # -30 for a 30% drop

    @classmethod
    def parse(cls, text: str) -> Shock:
        """``WETH=-30%`` (also ``WETH=-30``, ``0xToken=+12.5%``)."""
        m = _SHOCK.match(text)
        if not m:
            raise ConfigError(f"--price-shock {text!r}: expected TOKEN=PERCENT, e.g. WETH=-30%")
        pct = Decimal(m.group(2))
        if pct <= -100:
            raise ConfigError(f"--price-shock {text!r}: a price cannot fall by {-pct}% (more than all of it)")
        return cls(m.group(1), pct)

    def apply(self, answer: int) -> int:
        return int((Decimal(answer) * (100 + self.pct) / 100).to_integral_value(ROUND_DOWN))


@dataclass(frozen=True)
class AppliedShock:
    token: str  # symbol
    address: str  # the token
    feed: str  # the feed the protocols read
    replaced: str  # the contract whose code ShockAggregator replaced (the proxy's aggregator, or the feed)
    pct: Decimal
    decimals: int
    before: int  # the feed's answer before and after
    after: int


async def _symbols(chain: Chain, tokens: list[str]) -> dict[str, str]:
    res = await chain.multicall([Call(t, calldata("symbol()"), returns("string")) for t in tokens])
    return {t: s if isinstance(s, str) else t for t, s in zip(tokens, res)}


async def resolve(chain: Chain, feeds: dict[str, set[str]], shocks: list[Shock],
                  elsewhere: frozenset[Shock] = frozenset()) -> list[tuple[Shock, str, str, set[str]]]:
    """(shock, token, symbol, its feeds) for every shock; a ConfigError names a token no protocol prices
    (shocks in ``elsewhere`` reach a Pyth feed: they need no Chainlink-style one)."""
    symbols = await _symbols(chain, sorted(feeds))
    out = []
    for s in shocks:
        if is_hex_address(s.token):
            match = [t for t in feeds if t.lower() == s.token.lower()]
        else:
            match = [t for t in feeds if symbols[t].lower() == s.token.lower()]
        if not match and s not in elsewhere:
            known = ", ".join(sorted(set(symbols.values()), key=str.lower)) or "none"
            raise ConfigError(f"--price-shock {s.token}: no protocol of the config prices such a token with a "
                              f"Chainlink-style feed (those that do: {known}) or a Pyth feed (give a Pyth "
                              "feed id as 0x + 64 hex digits to shock that feed)")
        for t in match:
            out.append((s, t, symbols[t], feeds[t]))
    return out


async def _aggregator_under(chain: Chain, feed: str) -> str:
    """The aggregator behind a Chainlink proxy (its ``aggregator()``), else the feed itself."""
    try:
        raw = await chain.eth_call(feed, calldata("aggregator()"))
        agg = to_checksum_address("0x" + raw[12:32].hex()) if len(raw) >= 32 else None
    except (RpcError, ValueError):
        agg = None
    if agg and int(agg, 16) and await chain.get_code(agg):
        try:
            await chain.eth_call(agg, calldata("latestRoundData()"))
            return agg
        except RpcError:
            pass
    return feed


async def _round(chain: Chain, feed: str) -> tuple[int, int]:
    """(roundId, answer) of latestRoundData."""
    raw = await chain.eth_call(feed, calldata("latestRoundData()"))
    out = returns("uint80", "int256", "uint256", "uint256", "uint80")(raw)
    return out[0], out[1]


async def apply_shocks(chain: Chain, resolved: list[tuple[Shock, str, str, set[str]]],
                       timestamp: int) -> list[AppliedShock]:
    """Replace each shocked feed's aggregator by ShockAggregator answering the shocked price, a new
    round updated at ``timestamp``; check the feed then answers it."""
    planned: dict[str, tuple[Shock, str, str, str]] = {}  # replaced -> (shock, token, symbol, feed)
    for shock, token, sym, feeds in resolved:
        for feed in sorted(feeds):
            target = await _aggregator_under(chain, feed)
            prev = planned.get(target)
            if prev is not None and prev[0].pct != shock.pct:
                raise ConfigError(f"--price-shock: {prev[2]} and {sym} share the price feed {feed} "
                                  f"but are shocked by {prev[0].pct}% and {shock.pct}%")
            planned.setdefault(target, (shock, token, sym, feed))
    applied = []
    for target, (shock, token, sym, feed) in planned.items():
        try:
            round_id, _ = await _round(chain, target)
            decimals = returns("uint8")(await chain.eth_call(feed, calldata("decimals()")))
        except RpcError as e:
            raise StartupError(f"--price-shock {sym}: the feed {feed} does not answer as a Chainlink "
                               f"aggregator: {e}") from None
        _, seen_before = await _round(chain, feed)
        new = shock.apply(seen_before)
        if new <= 0:
            raise ConfigError(f"--price-shock {sym}: the feed {feed} would answer {new}")
        # A proxy passes its aggregator's answer through: the shocked answer is the feed's own.
        await chain.rpc.request("anvil_setCode", [target, aggregator.RUNTIME])
        for slot, value in ((aggregator.SLOT_ANSWER, new), (aggregator.SLOT_UPDATED_AT, timestamp),
                            (aggregator.SLOT_ROUND_ID, round_id + 1), (aggregator.SLOT_DECIMALS, decimals)):
            await chain.rpc.request("anvil_setStorageAt", [target, _word(slot), _word(value)])
        _, seen = await _round(chain, feed)
        if seen != new:
            raise StartupError(f"--price-shock {sym}: the feed {feed} answers {seen} after the shock, not {new}")
        applied.append(AppliedShock(sym, token, feed, target, shock.pct, decimals, seen_before, new))
    return applied
