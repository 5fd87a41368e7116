"""A relay stand-in for tests: an aiohttp JSON-RPC server on 127.0.0.1 that takes eth_sendBundle and
eth_sendPrivateTransaction as a Flashbots-style relay does, and either drops what it gets (a
builder that never includes it) or hands the transactions to the node (included in the next block
Anvil mines). Everything received is kept in ``received`` (method, params)."""
from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web
from eth_utils import keccak


class RelayStandIn:
    def __init__(self, node_url: str, *, drop: bool = False):
        self.node_url = node_url
        self.drop = drop
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bundles(self) -> list[tuple[list[str], int]]:
        """(raw transactions, target block) of every eth_sendBundle received."""
        return [(p["txs"], int(p["blockNumber"], 16)) for m, p in self.received if m == "eth_sendBundle"]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        method, params = body.get("method"), body.get("params") or [{}]
        self.received.append((method, params[0]))
        if method == "eth_sendBundle":
            txs = params[0]["txs"]
            result: Any = {"bundleHash": "0x" + keccak(b"".join(bytes.fromhex(t[2:]) for t in txs)).hex()}
        elif method == "eth_sendPrivateTransaction":
            txs = [params[0]["tx"]]
            result = "0x" + keccak(bytes.fromhex(txs[0][2:])).hex()
        else:
            return web.json_response({"jsonrpc": "2.0", "id": body.get("id"),
                                      "error": {"code": -32601, "message": f"{method} not supported"}})
        if not self.drop:
            assert self._session is not None
            for raw in txs:
                async with self._session.post(self.node_url, json={"jsonrpc": "2.0", "id": 1, "method":
                                                                   "eth_sendRawTransaction", "params": [raw]}) as r:
                    await r.json()
        return web.json_response({"jsonrpc": "2.0", "id": body.get("id"), "result": result})

    async def __aenter__(self) -> RelayStandIn:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()
