"""The monitor: an aiohttp server with /healthz (200 while blocks are processed on time, 503
otherwise, a JSON body either way) and /metrics (Prometheus text format), and a ticker that checks
the time-based alerts every second even while a step hangs."""
from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from keeper.observe.config import split_listen
from keeper.observe.metrics import exposition, registry_for
from keeper.observe.telemetry import Telemetry

log = structlog.get_logger()


class Monitor:
    def __init__(self, telemetry: Telemetry, listen: str):
        self.t = telemetry
        self.host, self.port = split_listen(listen)
        self.registry = registry_for(telemetry)
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> Monitor:
        app = web.Application()
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            from keeper.errors import StartupError
            raise StartupError(f"monitor.listen: cannot listen on {self.host}:{self.port}: {e.strerror}") from None
        self.port = self._runner.addresses[0][1]
        self._ticker = asyncio.create_task(self._tick())
        log.info("monitor.listening", url=self.url)
        return self

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._runner is not None:
            await self._runner.cleanup()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.t.check()

    async def _health(self, _request: web.Request) -> web.Response:
        ok, body = self.t.health()
        return web.json_response(body, status=200 if ok else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=exposition(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
