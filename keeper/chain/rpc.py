"""JSON-RPC access to the chain: the one place that talks to the node.

``Rpc`` checks answers and retries; a ``Transport`` carries the requests. The default transport
is AsyncWeb3's HTTP provider (one pooled aiohttp session), used through its raw ``make_request`` /
``make_batch_request`` (no middleware: web3's contract layer costs extra eth_chainId round trips
per call). Tests hand ``Rpc`` a scripted transport instead. Transient failures (connection errors,
timeouts, HTTP 5xx/429, a non-JSON answer, rate-limit answers) are retried with tenacity; an
execution revert or a malformed answer is not. Errors name the endpoint by scheme and host only:
the rest of a URL may hold credentials.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)
from web3.providers.rpc import AsyncHTTPProvider
from web3.types import RPCEndpoint

from keeper.chain.limits import RequestLimits, pack, request_size, too_large_message
from keeper.errors import RpcError, TransientRpcError
from keeper.secrets import public_url, register_url

# JSON-RPC error codes that mean "try again later" (rate limits, overloaded node).
_TRANSIENT_CODES = {-32005, -32603, 429}
# What providers answer when a query asks for too much (Infura -32005 "query returned more than 10000
# results", Alchemy "Log response size exceeded", "block range too large/wide"): not worth retrying
# as it is, the caller must ask for less (rate limits, same code, say "rate" or "requests" instead).
_TOO_LARGE = ("results", "range", "response size", "too large")


def asks_too_much(message: str) -> bool:
    m = message.lower()
    return any(p in m for p in _TOO_LARGE)

Request = tuple[str, list[Any]]  # (method, params)


class Transport(Protocol):
    """Carries JSON-RPC requests to a node and brings back the response objects as decoded JSON
    (``{"result": ...}`` or ``{"error": {...}}``); Rpc checks them. Raising aiohttp's connection
    errors, ``asyncio.TimeoutError`` or ``TransientRpcError`` makes Rpc try again."""

    async def send(self, method: str, params: list[Any]) -> Any:
        """One request -> its response object."""
        ...

    async def send_batch(self, requests: list[Request]) -> Any:
        """A JSON-RPC batch -> the response objects in request order (or the node's single error
        object when it refuses the whole batch)."""
        ...

    async def close(self) -> None: ...


class HttpTransport:
    """JSON-RPC over HTTP(S) with web3's AsyncHTTPProvider (no retries of its own: Rpc retries).
    Its failures come out as RpcError / TransientRpcError naming the endpoint as scheme and host
    (aiohttp's own messages carry the full URL, credentials included)."""

    def __init__(self, url: str, *, timeout: float = 30.0):
        self.url = register_url(url)  # the public form; the secret parts are scrubbed from logs
        self.timeout = timeout
        self._provider = AsyncHTTPProvider(
            url, request_kwargs={"timeout": aiohttp.ClientTimeout(total=timeout)},
            exception_retry_configuration=None,
        )

    async def send(self, method: str, params: list[Any]) -> Any:
        try:
            return await self._provider.make_request(RPCEndpoint(method), params)
        except Exception as e:
            raise self._error(method, e) from None

    async def send_batch(self, requests: list[Request]) -> Any:
        try:
            return await self._provider.make_batch_request([(RPCEndpoint(m), p) for m, p in requests])
        except Exception as e:
            raise self._error("batch", e) from None

    def _error(self, method: str, e: Exception) -> RpcError:
        err = self._describe(method, e)
        err.cause = e  # for its type only (e.g. a disconnect on a large request): its text has the URL
        return err

    def _describe(self, method: str, e: Exception) -> RpcError:
        where = f"{method} at {self.url}"
        if isinstance(e, RpcError):
            return e
        if isinstance(e, aiohttp.ClientResponseError):
            transient = e.status >= 500 or e.status == 429
            kind = TransientRpcError if transient else RpcError
            return kind(f"{where}: HTTP {e.status} {e.message or ''}".rstrip(), code=e.status)
        if isinstance(e, asyncio.TimeoutError | TimeoutError):
            return TransientRpcError(f"{where}: no answer within {self.timeout:g} s")
        if isinstance(e, aiohttp.ClientError | OSError):
            return TransientRpcError(f"{where}: {type(e).__name__} (connection)")
        if isinstance(e, ValueError):  # a body that is not JSON: a proxy's or load balancer's error page
            return TransientRpcError(f"{where}: the answer is not JSON")
        return RpcError(f"{where}: {type(e).__name__}")

    async def close(self) -> None:
        await self._provider.disconnect()


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
        if (code in _TRANSIENT_CODES and "revert" not in msg.lower() and not too_large_message(msg)
                and not asks_too_much(msg)):
            raise TransientRpcError(f"{method}: {code} {msg}")
        raise RpcError(f"{method}: {msg}", code=code, data=err.get("data"))
    return resp["result"]


@dataclass
class _Entry:
    calls: list[Request]
    single: bool  # from request(): alone, it goes as a plain request
    done: asyncio.Future[list[Any]]


@dataclass
class _Coalescer:
    """Requests started by concurrent tasks in the same turns of the event loop, sent together:
    each JSON-RPC batch within ``limits``, a caller's requests never split."""
    rpc: Rpc
    limits: RequestLimits | None
    queue: list[_Entry] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    HOPS = 3  # loop turns waited for the other tasks' requests before sending

    async def add(self, calls: list[Request], single: bool) -> list[Any]:
        loop = asyncio.get_running_loop()
        entry = _Entry(calls, single, loop.create_future())
        self.queue.append(entry)
        if len(self.queue) == 1:
            loop.call_soon(self._hop, self.HOPS)
        return await entry.done

    def _hop(self, left: int) -> None:
        if left > 0:
            asyncio.get_running_loop().call_soon(self._hop, left - 1)
            return
        queue, self.queue = self.queue, []
        for group in self._groups(queue):
            t = asyncio.ensure_future(self._send(group))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)

    def _groups(self, queue: list[_Entry]) -> list[list[_Entry]]:
        if self.limits is None:
            return [queue]
        sizes = [sum(request_size(m, p) for m, p in e.calls) + 2 * (len(e.calls) - 1) for e in queue]
        counts = [len(e.calls) for e in queue]
        groups: list[list[_Entry]] = []
        for r in pack(sizes, RequestLimits(self.limits.max_bytes, 10**9)):
            cur: list[_Entry] = []
            n = 0
            for i in r:  # and within the count limit
                if cur and n + counts[i] > self.limits.max_batch:
                    groups.append(cur)
                    cur, n = [], 0
                cur.append(queue[i])
                n += counts[i]
            groups.append(cur)
        return groups

    async def _send(self, group: list[_Entry]) -> None:
        try:
            if len(group) == 1 and group[0].single:
                (m, p), = group[0].calls
                try:
                    answers: list[Any] = [await self.rpc._request(m, p)]
                except RpcError as e:
                    answers = [e]
            else:
                answers = await self.rpc._batch([c for e in group for c in e.calls], raise_errors=False)
        except BaseException as e:
            for entry in group:
                if not entry.done.done():
                    entry.done.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        at = 0
        for entry in group:
            if not entry.done.done():
                entry.done.set_result(answers[at:at + len(entry.calls)])
            at += len(entry.calls)


_COALESCING: ContextVar[_Coalescer | None] = ContextVar("rpc_coalescing", default=None)


class Rpc:
    """``Rpc(url)`` speaks HTTP to ``url``; ``Rpc(transport=...)`` uses the given transport."""

    def __init__(self, url: str | None = None, *, transport: Transport | None = None, timeout: float = 30.0,
                 attempts: int = 5, retry_wait: float = 0.1):
        if transport is None:
            if url is None:
                raise ValueError("Rpc needs a url or a transport")
            transport = HttpTransport(url, timeout=timeout)
        self.url = public_url(url) if url is not None else None  # scheme and host only
        self.transport: Transport = transport
        self._retry: dict[str, Any] = {
            "retry": retry_if_exception(_is_transient),
            "stop": stop_after_attempt(attempts),
            "wait": wait_exponential(multiplier=retry_wait, max=5),
            "reraise": True,
        }
        self.requests = 0  # count of round trips to the node, for benchmarks

    async def close(self) -> None:
        await self.transport.close()

    @contextlib.contextmanager
    def coalescing(self, limits: RequestLimits | None = None) -> Iterator[None]:
        """Within it, the requests and batches that concurrent tasks (started inside it, e.g. by
        asyncio.gather) begin in the same turns of the event loop go to the node as one JSON-RPC
        batch (several when ``limits`` say so): one round trip for reads that do not depend on
        each other. Answers, errors and retries are each caller's, as without it (a transient
        failure of the batch is retried whole)."""
        token = _COALESCING.set(_Coalescer(self, limits))
        try:
            yield
        finally:
            _COALESCING.reset(token)

    async def request(self, method: str, params: list[Any]) -> Any:
        co = _COALESCING.get()
        if co is None:
            return await self._request(method, params)
        (answer,) = await co.add([(method, params)], single=True)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def _request(self, method: str, params: list[Any]) -> Any:
        async for attempt in AsyncRetrying(**self._retry):
            with attempt:
                self.requests += 1
                return _check(method, await self.transport.send(method, params))
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    async def batch(self, calls: Iterable[Request], *, raise_errors: bool = True) -> list[Any]:
        """Send several requests in one JSON-RPC batch; results in order.

        With raise_errors=False an individual error comes back as the RpcError instance.
        """
        calls = list(calls)
        if not calls:
            return []
        co = _COALESCING.get()
        if co is None:
            return await self._batch(calls, raise_errors=raise_errors)
        answers = await co.add(calls, single=False)
        if raise_errors:
            for a in answers:
                if isinstance(a, Exception):
                    raise a
        return answers

    async def _batch(self, calls: list[Request], *, raise_errors: bool) -> list[Any]:
        async for attempt in AsyncRetrying(**self._retry):
            with attempt:
                self.requests += 1
                resp = await self.transport.send_batch(calls)
                if not isinstance(resp, list) or len(resp) != len(calls):
                    _check("batch", resp)  # a single error object for the whole batch
                    raise RpcError(f"batch: node answered {len(resp)} of {len(calls)} requests")
                out: list[Any] = []
                for (method, _), r in zip(calls, resp, strict=True):
                    try:
                        out.append(_check(method, r))
                    except TransientRpcError:
                        raise
                    except RpcError as e:
                        if raise_errors:
                            raise
                        out.append(e)
                return out
        raise AssertionError("unreachable: tenacity re-raises the last failure")
