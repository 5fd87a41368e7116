"""JSON-RPC access to the chain: the one place that talks to the node.

AsyncWeb3's HTTP provider carries the connection (one pooled aiohttp session); requests go through
its raw ``make_request`` / ``make_batch_request`` (no middleware: web3's contract layer costs extra
eth_chainId round trips per call). Transient failures (connection errors, timeouts, HTTP 5xx/429,
rate-limit answers) are retried with tenacity; an execution revert or a malformed answer is not.
"""
from __future__ import annotations

import asyncio
from typing import Any, Iterable

import aiohttp
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)
from web3 import AsyncWeb3
from web3.providers.rpc import AsyncHTTPProvider

from keeper.errors import RpcError, TransientRpcError

# JSON-RPC error codes that mean "try again later" (rate limits, overloaded node).
_TRANSIENT_CODES = {-32005, -32603, 429}
# What providers answer when a query asks for too much (Infura -32005 "query returned more than 10000
# results", Alchemy "Log response size exceeded", "block range too large/wide"): not worth retrying
# as it is, the caller must ask for less (rate limits, same code, say "rate" or "requests" instead).
_TOO_LARGE = ("results", "range", "response size", "too large")


def asks_too_much(message: str) -> bool:
    m = message.lower()
    return any(p in m for p in _TOO_LARGE)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, (TransientRpcError, aiohttp.ClientConnectionError, asyncio.TimeoutError,
                            aiohttp.ServerDisconnectedError)) or (
        isinstance(exc, aiohttp.ClientResponseError) and (exc.status >= 500 or exc.status == 429)
    )


def _check(method: str, resp: Any) -> Any:
    if not isinstance(resp, dict) or ("result" not in resp and "error" not in resp):
        raise RpcError(f"{method}: malformed answer from node: {str(resp)[:200]}")
    if "error" in resp:
        err = resp["error"] or {}
        code = err.get("code")
        msg = err.get("message", "")
        if code in _TRANSIENT_CODES and "revert" not in msg.lower() and not asks_too_much(msg):
            raise TransientRpcError(f"{method}: {code} {msg}")
        raise RpcError(f"{method}: {msg}", code=code, data=err.get("data"))
    return resp["result"]


class Rpc:
    def __init__(self, url: str, *, timeout: float = 30.0, attempts: int = 5):
        self.url = url
        self.w3 = AsyncWeb3(AsyncHTTPProvider(
            url, request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout)},
            exception_retry_configuration=None,
        ))
        self._retry = dict(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=0.1, max=5),
            reraise=True,
        )
        self.requests = 0  # count of HTTP round trips, for benchmarks

    async def close(self) -> None:
        await self.w3.provider.disconnect()

    async def request(self, method: str, params: list) -> Any:
        async for attempt in AsyncRetrying(**self._retry):
            with attempt:
                self.requests += 1
                return _check(method, await self.w3.provider.make_request(method, params))

    async def batch(self, calls: Iterable[tuple[str, list]], *, raise_errors: bool = True) -> list[Any]:
        """Send several requests in one JSON-RPC batch; results in order.

        With raise_errors=False an individual error comes back as the RpcError instance.
        """
        calls = list(calls)
        if not calls:
            return []
        async for attempt in AsyncRetrying(**self._retry):
            with attempt:
                self.requests += 1
                resp = await self.w3.provider.make_batch_request(calls)
                if not isinstance(resp, list) or len(resp) != len(calls):
                    _check("batch", resp)  # a single error object for the whole batch
                    raise RpcError(f"batch: node answered {len(resp)} of {len(calls)} requests")
                out = []
                for (method, _), r in zip(calls, resp):
                    try:
                        out.append(_check(method, r))
                    except TransientRpcError:
                        raise
                    except RpcError as e:
                        if raise_errors:
                            raise
                        out.append(e)
                return out
