"""Errors the keeper raises, and readable reasons for the reverts of real protocol contracts."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from eth_abi import decode
from eth_utils import keccak


class KeeperError(Exception):
    """Base class."""


class ConfigError(KeeperError):
    """Bad configuration or command line: exit status 2, nothing sent."""


class StartupError(KeeperError):
    """A start-up sanity check failed (chain id, signer, missing code): exit status 2."""


class RpcError(KeeperError):
    def __init__(self, message: str, *, code: int | None = None, data: Any = None):
        super().__init__(message)
        self.code = code
        self.data = data
        self.cause: BaseException | None = None  # the transport's own exception, when it raised one


class TransientRpcError(RpcError):
    """Worth retrying: connection trouble, rate limit, overloaded node."""


class RequestTooLarge(RpcError):
    """One request the node refuses as too large that cannot be split any further."""


# Errors of the contracts every protocol meets (tokens, Pyth); each protocol declares its own in
# its registry entry (keeper/protocols/<kind>/__init__.py).
COMMON_ERRORS = (
    "ERC20InsufficientBalance(address,uint256,uint256)", "ERC20InsufficientAllowance(address,uint256,uint256)",
    # Pyth (PythErrors.sol)
    "PriceFeedNotFoundWithinRange()", "InvalidUpdateData()", "NoFreshUpdate()", "InvalidArgument()",
    "StalePrice()", "PriceFeedNotFound()", "InsufficientFee()",
)


def _signature(e: dict[str, Any]) -> str:
    def typ(p: dict[str, Any]) -> str:
        t: str = p["type"]
        return "(" + ",".join(typ(c) for c in p["components"]) + ")" + t[5:] if t.startswith("tuple") else t
    return f"{e['name']}({','.join(typ(i) for i in e['inputs'])})"


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, str], dict[str, str]]:
    """(selector -> custom error name, Error(string) code -> name), from the protocol registry."""
    from keeper.abi import load_json
    from keeper.executor import error_signatures
    from keeper.protocols.registry import protocols
    sigs = list(COMMON_ERRORS) + error_signatures()  # the keeper's own LiquidationExecutor too
    codes: dict[str, str] = {}
    for p in protocols().values():
        sigs += p.errors
        codes.update(p.error_codes)
        for f in p.abi_error_files:  # e.g. every custom error of a protocol's compile job
            sigs += [_signature(e) for e in load_json(f"{p.kind}/{f}") if e.get("type") == "error"]
    return {"0x" + keccak(text=sig)[:4].hex(): sig.split("(")[0] for sig in sigs}, codes


_ERROR_STRING = "0x08c379a0"  # Error(string)
_PANIC = "0x4e487b71"  # Panic(uint256)


def decode_revert(data: str | bytes | None, message: str = "") -> str:
    """A readable reason for revert data: Aave codes ("45 HEALTH_FACTOR_NOT_BELOW_THRESHOLD"),
    plain strings (Morpho), known custom errors, panics; else the raw selector."""
    if isinstance(data, (bytes, bytearray)):
        data = "0x" + bytes(data).hex()
    if isinstance(data, dict):  # some nodes nest it
        data = data.get("data")
    if not data or data == "0x":
        return message or "reverted without reason"
    data = data.lower()
    if data.startswith(_ERROR_STRING):
        try:
            (reason,) = decode(["string"], bytes.fromhex(data[10:]))
        except Exception:
            return f"revert {data[:74]}"
        name = _tables()[1].get(reason)
        return f"{reason} {name}" if name else reason
    if data.startswith(_PANIC):
        try:
            (code,) = decode(["uint256"], bytes.fromhex(data[10:]))
            return f"panic 0x{code:02x}"
        except Exception:
            return "panic"
    from keeper.executor import decode_error  # the keeper's own executor: its errors carry the figures
    try:
        own = decode_error(bytes.fromhex(data[2:]))
    except Exception:  # malformed arguments: the name below still says what it is
        own = None
    if own is not None:
        return f"{own[0]}({', '.join(str(a) for a in own[1])})"
    name = _tables()[0].get(data[:10])
    return name if name else f"custom error {data[:10]}"
