"""Requests that fit: the size of a JSON-RPC request before it is sent, packing requests into
batches under a byte and a count limit, and recognising a node's "too large" answer.

Nodes and providers cap what one HTTP POST may carry: Anvil answers -32600 "Invalid request" above
about 2 MiB (HTTP 200, one error object for the whole batch), proxies answer HTTP 413, geth
"batch too large" above its batch limit, hosted providers their own wording (often with -32005,
which otherwise means "rate limited"). The limits shrink on such an answer and stay shrunk."""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from keeper.errors import RpcError

MIN_REQUEST_BYTES = 4 << 10  # never shrink below: a refusal of something smaller is not about size
# A -32600 "Invalid request" answer to a request at least this large is taken as "too large" (Anvil's
# wording); to a smaller one it is a genuinely malformed request.
SUSPECT_INVALID_BYTES = 64 << 10
# A connection the node drops while a request at least this large is sent (Anvil breaks the pipe
# from about 4 MB) is taken as "too large" too, once the transport's retries have failed.
SUSPECT_DISCONNECT_BYTES = 1 << 20
_ID_WIDTH = 10**15  # request ids are counters: room for 16 digits
# "batch too large" (geth), "batch size/limit exceeded", "exceeds the maximum batch size"; not the
# "batch: ..." prefix our own errors carry.
_BATCH_WORDS = re.compile(r"batch[ _-]?(too|size|limit|exceed)|(max|exceed)\w*[ _a-z]*batch")
_TOO_LARGE = re.compile(
    r"too (large|big)|\b413\b"
    r"|(request|response|payload|body|content|message)[ _-]?(size|length)|(payload|body)[ _-]?limit"
    r"|max(imum)?[ _-]?(request|batch|payload|body|message)[ _-]?(size|length)"
    r"|batch[ _-]?(size|limit)|exceed\w*[ _a-z]*batch|batch[ _a-z]*exceed"
)
_NOT_SIZE = re.compile(r"range|results")  # eth_getLogs block-range refusals: the log reader's business


def too_large_message(message: str) -> bool:
    """Whether a node's error message says the request (or its answer) was too large."""
    m = message.lower()
    return bool(_TOO_LARGE.search(m)) and not _NOT_SIZE.search(m)


def is_too_large(exc: BaseException, sent_bytes: int) -> bool:
    """Whether ``exc``, raised for a request of ``sent_bytes``, is a refusal because of its size."""
    if isinstance(exc, RpcError) and exc.cause is not None:  # the HTTP transport's failure, by its type
        exc = exc.cause if not isinstance(exc.cause, aiohttp.ClientResponseError) else exc
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status == 413
    if isinstance(exc, (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)):
        return sent_bytes >= SUSPECT_DISCONNECT_BYTES
    if isinstance(exc, RpcError):
        if exc.code == 413 or too_large_message(str(exc)):
            return True
        return exc.code == -32600 and sent_bytes >= SUSPECT_INVALID_BYTES and "invalid request" in str(exc).lower()
    return False


def batch_refusal(exc: BaseException) -> bool:
    """A refusal that names the batch (count limit) rather than the bytes."""
    return isinstance(exc, RpcError) and bool(_BATCH_WORDS.search(str(exc).lower().removeprefix("batch:")))


def request_size(method: str, params: Any) -> int:
    """Bytes of one request as JSON-RPC encodes it (web3's encoding: json.dumps with its default
    separators; an id of up to 16 digits)."""
    return len(json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": _ID_WIDTH}))


def batch_size(sizes: Sequence[int]) -> int:
    """Bytes of a batch of requests of these sizes: "[" + entries joined by ", " + "]"."""
    return sum(sizes) + 2 * max(len(sizes) - 1, 0) + 2


@dataclass
class RequestLimits:
    """The limits requests are packed under; lowered when the node refuses one as too large."""
    max_bytes: int
    max_batch: int

    def __post_init__(self) -> None:
        if self.max_bytes < MIN_REQUEST_BYTES:
            raise ValueError(f"max_request_bytes must be at least {MIN_REQUEST_BYTES}, got {self.max_bytes}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {self.max_batch}")

    def fits(self, sizes: Sequence[int]) -> bool:
        return len(sizes) <= self.max_batch and batch_size(sizes) <= self.max_bytes

    def lower(self, sent_bytes: int, count: int, by_count: bool) -> bool:
        """After a refusal of ``count`` requests in ``sent_bytes``: halve what was refused (the
        count when the node named the batch, else the bytes). False when nothing can be lowered
        (a single request at the byte floor)."""
        if count > 1 and (by_count or sent_bytes // 2 < MIN_REQUEST_BYTES):
            self.max_batch = min(self.max_batch, count // 2)
            return True
        new = max(MIN_REQUEST_BYTES, min(self.max_bytes, sent_bytes // 2))
        changed = new < sent_bytes
        self.max_bytes = new
        return changed


def pack(sizes: Sequence[int], limits: RequestLimits) -> list[range]:
    """Consecutive groups (index ranges) of requests, each group within the limits; a request over
    the byte limit on its own gets a group of its own (the caller decides)."""
    groups: list[range] = []
    start, total = 0, 2
    for i, s in enumerate(sizes):
        n = i - start
        if n and (n + 1 > limits.max_batch or total + 2 + s > limits.max_bytes):
            groups.append(range(start, i))
            start, total = i, 2
            n = 0
        total += s + (2 if n else 0)
    if start < len(sizes):
        groups.append(range(start, len(sizes)))
    return groups
