"""What one RPC endpoint can do, probed once per endpoint (keeper/chain/failover.py) and respected
by the rest of the keeper: JSON-RPC batches, eth_simulateV1, a WebSocket answering eth_subscribe
newHeads, and the widest eth_getLogs block range it accepts (learned from its first refusal).
Also the checks that an answer is about what was asked (a block of the number asked, a receipt of
the hash asked, a block number that is a hex quantity)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass
class Capabilities:
    """None: not probed (or the probe could not tell); the keeper then tries and sees."""
    batches: bool | None = None
    simulate_v1: bool | None = None
    websocket: bool | None = None
    max_log_range: int | None = None  # blocks per eth_getLogs; None: no refusal met yet


# eth_simulateV1 with one empty block: a node that has it answers a list of one block.
SIMULATE_PROBE: list[Any] = [{"blockStateCalls": [{"calls": []}]}, "latest"]
# EIP-1474: -32601 method not found, -32602 invalid params (nodes that know no such params shape),
# -32600 (some providers' answer to a method they do not serve); and the words providers use.
_MISSING_CODES = {-32601, -32602, -32600}
_MISSING_WORDS = re.compile(r"not (found|supported|available|allowed|enabled|exist)|unsupported|does not exist"
                            r"|unknown method|no such method|disabled|unavailable")


def simulate_answer(resp: Any) -> bool | None:
    """What an answer to SIMULATE_PROBE says about eth_simulateV1 (None: it cannot tell, e.g. a
    rate limit)."""
    if not isinstance(resp, dict):
        return None
    if "result" in resp and "error" not in resp:
        return True if isinstance(resp["result"], list) else None
    err = resp.get("error")
    if not isinstance(err, dict):
        return None
    if err.get("code") in _MISSING_CODES or _MISSING_WORDS.search(str(err.get("message", "")).lower()):
        return False
    return None


async def probe_websocket(url: str, timeout: float = 5.0) -> bool:
    """Whether ``url`` answers eth_subscribe("newHeads") with a subscription id (unsubscribed and
    closed at once)."""
    try:
        async with aiohttp.ClientSession() as s, s.ws_connect(url, timeout=aiohttp.ClientWSTimeout(
                ws_close=timeout)) as ws:
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                          "params": ["newHeads"]}))
            reply = await ws.receive_json(timeout=timeout)
            ok = isinstance(reply, dict) and isinstance(reply.get("result"), str)
            if ok:
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "eth_unsubscribe",
                                              "params": [reply["result"]]}))
            return ok
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError, TypeError):
        return False


# A provider's stated eth_getLogs limit: a suggested range "[0x10, 0x7cf]" (Infura, Alchemy), or a
# number of blocks next to "block(s)"/"range" ("exceed maximum block range: 2000", "up to a 2K block
# range", "limited to a 10,000 range"); never a count of results or logs.
_SUGGESTED = re.compile(r"\[\s*(0x[0-9a-f]+)\s*,\s*(0x[0-9a-f]+)\s*\]|range\D{0,10}?(\d+)\s*-\s*(\d+)")
_NUMBER = r"(\d[\d,]*)\s*(k\b)?"
_BEFORE_WORD = re.compile(_NUMBER + r"\s*-?\s*(blocks?|range)")
_AFTER_WORD = re.compile(r"(?:blocks?|range)[^\d\[]{0,30}?" + _NUMBER + r"(?!\s*(?:results|logs|entries))")


def stated_log_range(message: str) -> int | None:
    """The block range a refusal of eth_getLogs says the provider accepts, if it says one."""
    m = message.lower()
    if s := _SUGGESTED.search(m):
        lo, hi = (int(s.group(1), 16), int(s.group(2), 16)) if s.group(1) else (int(s.group(3)), int(s.group(4)))
        return hi - lo + 1 if hi >= lo else None
    for pattern in (_BEFORE_WORD, _AFTER_WORD):
        if n := pattern.search(m):
            value = int(n.group(1).replace(",", "")) * (1000 if n.group(2) else 1)
            if value > 0:
                return value
    return None


# ---- answers about what was asked ----

_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,64}")


def quantity(value: Any) -> int | None:
    """A JSON-RPC hex quantity ("0x1a"), or None when ``value`` is not one."""
    if isinstance(value, str) and _QUANTITY.fullmatch(value):
        return int(value, 16)
    return None


def mismatch(method: str, params: list[Any], result: Any) -> str | None:
    """Why ``result`` is not an answer to ``method(params)`` (None: nothing wrong seen). Blocks
    must carry the number asked, receipts and transactions the hash asked."""
    if result is None:
        return None  # "not found" is the caller's business
    if method == "eth_getBlockByNumber" and params and (asked := quantity(params[0])) is not None:
        if not isinstance(result, dict):
            return f"block {asked} answered with {str(result)[:60]!r}, not a block"
        got = quantity(result.get("number"))
        if got != asked:
            return f"block {asked} asked, block {result.get('number')!r} answered"
    elif method in ("eth_getTransactionReceipt", "eth_getTransactionByHash") and params:
        key = "transactionHash" if method == "eth_getTransactionReceipt" else "hash"
        if not isinstance(result, dict):
            return f"{key} {params[0]} answered with {str(result)[:60]!r}"
        got = result.get(key)
        if not isinstance(got, str) or got.lower() != str(params[0]).lower():
            return f"{key} {params[0]} asked, {got!r} answered"
    return None
