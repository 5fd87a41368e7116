"""A fault-injecting JSON-RPC proxy for tests: an aiohttp server on 127.0.0.1 in front of a real node
(the session Anvil) that forwards every request unchanged unless a rule scripted by the test says
otherwise. It lets a test meet what real nodes and hosted providers do and Anvil does not: a method
that does not exist, a non-JSON answer, a slow or hanging node, "too many results" on wide
eth_getLogs, refused batches, a connection dropped mid-request, arbitrary JSON-RPC errors.

    async with RpcProxy(anvil.url) as proxy:
        proxy.on("eth_simulateV1", MethodNotFound())                 # every time
        proxy.on("eth_getLogs", TooManyResults(), when=wider_than(100))
        proxy.on("eth_feeHistory", Garbage(), times=1)               # once, then forwarded
        proxy.on(None, RefuseBatch())                                # any batch POST
        proxy.on("eth_blockNumber", Result("0x5"), times=3)          # a made-up answer
        held = proxy.on("eth_sendRawTransaction", Hold(), times=1).fault
        ...; await held.arrived.wait(); <act on the node>; held.release()
        keeper_url = proxy.url
        ...
        assert proxy.calls("eth_estimateGas")                        # what the client sent

Rules are tried in the order they were added; the first that matches a request applies (and uses up
one of its ``times``). Two kinds of fault:

- request faults (MethodNotFound, TooManyResults, Error, Result) replace the answer to that one request; the
  other requests of the same batch still go to the node, and the batch answer is put back together
  in the order of the request ids;
- HTTP faults (Garbage, Delay, Hold, Hang, Drop, HttpStatus, RefuseBatch) act on the whole POST as
  soon as one of its requests matches (RefuseBatch matches batch POSTs only). Delay and Hold forward
  the POST after waiting (Hold: until the test releases it).

Every request received is kept in ``proxy.seen`` (method, params, whether it came in a batch, the
fault applied or None); ``proxy.posts`` counts HTTP round trips."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

Params = list[Any]


# ---- faults ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Error:
    """Answer this JSON-RPC error object instead of forwarding."""
    code: int
    message: str
    data: Any = None


@dataclass(frozen=True)
class MethodNotFound(Error):
    """What geth-style nodes answer for a method they lack (EIP-1474 -32601)."""
    code: int = -32601
    message: str = "the method does not exist/is not available"


@dataclass(frozen=True)
class Result:
    """Answer this JSON-RPC result instead of forwarding (a lagging or lying node: an old block
    number, another block, another transaction's receipt)."""
    value: Any


@dataclass(frozen=True)
class TooManyResults(Error):
    """What Infura answers to an eth_getLogs whose result would be too large (EIP-1474 -32005,
    "limit exceeded"); pair it with ``when=wider_than(n)`` to mimic a provider's range limit."""
    code: int = -32005
    message: str = "query returned more than 10000 results"


@dataclass(frozen=True)
class Garbage:
    """Answer the whole POST with a body that is not JSON (a load balancer's error page)."""
    body: str = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    status: int = 200


@dataclass(frozen=True)
class HttpStatus:
    """Answer the whole POST with this HTTP status and an empty body (503, 429...)."""
    status: int


@dataclass(frozen=True)
class Delay:
    """Forward the POST after ``seconds``."""
    seconds: float


@dataclass(frozen=True)
class Hang:
    """Never answer (until the client gives up or the proxy stops)."""


@dataclass(frozen=True, eq=False)
class Hold:
    """Keep the POST until the test calls ``release()``, then forward it: the test acts on the node
    in between (e.g. mines a competitor's transaction after the keeper simulated and before its
    request reaches the node). ``arrived`` is set when a request is held."""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


@dataclass(frozen=True)
class Drop:
    """Close the connection without an answer (the client sees the server disconnect)."""


@dataclass(frozen=True)
class RefuseBatch:
    """Answer a batch POST with one error object, as providers without batch support do."""
    message: str = "batch requests are not supported"


Fault = Error | Result | Garbage | HttpStatus | Delay | Hold | Hang | Drop | RefuseBatch
HTTP_FAULTS = (Garbage, HttpStatus, Delay, Hold, Hang, Drop, RefuseBatch)


def wider_than(blocks: int) -> Callable[[Params], bool]:
    """A ``when`` for eth_getLogs: the filter spans more than ``blocks`` blocks (numbers only)."""
    def check(params: Params) -> bool:
        f = params[0] if params else {}
        try:
            return int(f["toBlock"], 16) - int(f["fromBlock"], 16) + 1 > blocks
        except (KeyError, TypeError, ValueError):
            return False
    return check


# ---- rules and records -------------------------------------------------------------------------

@dataclass
class Rule:
    fault: Fault
    method: str | None = None  # None: any method
    when: Callable[[Params], bool] | None = None
    times: int | None = None  # None: forever
    used: int = 0

    def matches(self, method: str, params: Params, batch: bool) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        if isinstance(self.fault, RefuseBatch) and not batch:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.when is None or bool(self.when(params))


@dataclass(frozen=True)
class Seen:
    method: str
    params: Params
    batch: bool
    fault: str | None  # the fault's class name, or None when forwarded untouched


@dataclass
class RpcProxy:
    upstream: str
    rules: list[Rule] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    posts: int = 0

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._release = asyncio.Event()  # set on stop: frees hanging handlers
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- scripting --
    def on(self, method: str | None, fault: Fault, *, when: Callable[[Params], bool] | None = None,
           times: int | None = None) -> Rule:
        """Apply ``fault`` to requests for ``method`` (None: any) for which ``when(params)`` holds,
        ``times`` times (None: until cleared)."""
        rule = Rule(fault, method, when, times)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Forget every rule: forward everything from now on."""
        self.rules.clear()

    def calls(self, method: str) -> list[Params]:
        """The params of every request for ``method`` received so far."""
        return [s.params for s in self.seen if s.method == method]

    def faults(self, method: str | None = None) -> list[Seen]:
        """The requests (for ``method``, or any) that got a fault instead of the node's answer."""
        return [s for s in self.seen if s.fault and (method is None or s.method == method)]

    # -- lifecycle --
    async def start(self) -> RpcProxy:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        self._release.set()
        for rule in self.rules:  # held requests go on (to a client that may have given up)
            if isinstance(rule.fault, Hold):
                rule.fault.release()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> RpcProxy:  # noqa: PYI034
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- serving --
    def _match(self, method: str, params: Params, batch: bool) -> Fault | None:
        for rule in self.rules:
            if rule.matches(method, params, batch):
                rule.used += 1
                return rule.fault
        return None

    async def _forward(self, body: Any) -> Any:
        assert self._session is not None
        async with self._session.post(self.upstream, json=body) as r:
            return await r.json(content_type=None)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.posts += 1
        body = await request.json()
        batch = isinstance(body, list)
        reqs: list[dict] = body if batch else [body]
        answers: dict[int, dict] = {}  # index in reqs -> answer made here
        http_fault: Fault | None = None
        for i, rq in enumerate(reqs):
            method, params = rq.get("method", ""), rq.get("params") or []
            fault = self._match(method, params, batch)
            self.seen.append(Seen(method, params, batch, type(fault).__name__ if fault else None))
            if isinstance(fault, Error):
                err: dict[str, Any] = {"code": fault.code, "message": fault.message}
                if fault.data is not None:
                    err["data"] = fault.data
                answers[i] = {"jsonrpc": "2.0", "id": rq.get("id"), "error": err}
            elif isinstance(fault, Result):
                answers[i] = {"jsonrpc": "2.0", "id": rq.get("id"), "result": fault.value}
            elif isinstance(fault, HTTP_FAULTS) and http_fault is None:
                http_fault = fault
        if isinstance(http_fault, Delay):
            await asyncio.sleep(http_fault.seconds)
        elif isinstance(http_fault, Hold):
            http_fault.arrived.set()
            await http_fault.released.wait()
        elif isinstance(http_fault, Hang):
            await self._release.wait()
            return web.Response(status=503)
        elif isinstance(http_fault, Drop):
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=503)  # never reaches the client
        elif isinstance(http_fault, Garbage):
            return web.Response(status=http_fault.status, text=http_fault.body, content_type="text/html")
        elif isinstance(http_fault, HttpStatus):
            return web.Response(status=http_fault.status)
        elif isinstance(http_fault, RefuseBatch):
            return web.json_response({"jsonrpc": "2.0", "id": None,
                                      "error": {"code": -32600, "message": http_fault.message}})
        rest = [rq for i, rq in enumerate(reqs) if i not in answers]
        if not batch:
            return web.json_response(answers[0] if answers else await self._forward(body))
        upstream = await self._forward(rest) if rest else []
        by_id = {json.dumps(a.get("id")): a for a in upstream} if isinstance(upstream, list) else {}
        out = [answers[i] if i in answers else by_id.get(json.dumps(rq.get("id")), upstream)
               for i, rq in enumerate(reqs)]
        return web.json_response(out)
