"""A JSON-RPC HTTP proxy for tests: forwards every POST to an upstream node and records the size of
each request body and the node's answer status, so a test can count what the keeper sent."""
from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
from aiohttp import web


@dataclass
class Post:
    size: int  # request body, bytes
    entries: int  # JSON-RPC requests in it (1 for a single request)
    refused: bool  # the node answered one error object for the whole POST


@dataclass
class RecordingProxy:
    upstream: str
    port: int
    posts: list[Post] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> RecordingProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert self._session is not None
        async with self._session.post(self.upstream, data=body,
                                      headers={"Content-Type": "application/json"}) as r:
            answer = await r.read()
            status = r.status
        entries = body.count(b'"jsonrpc"')
        single_error = answer.lstrip().startswith(b"{") and b'"error"' in answer and body.lstrip().startswith(b"[")
        self.posts.append(Post(len(body), entries, single_error or status != 200))
        return web.Response(body=answer, status=status, content_type="application/json")
