"""Helpers for the monitoring tests: a keeper with a [monitor] table, its daemon loop run in the
background, a scrape of /metrics and /healthz, and a webhook receiver."""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web
from eth_account import Account
from prometheus_client.parser import text_string_to_metric_families

from keeper.chain.signer import Signer
from keeper.config import load_config
from keeper.engine.daemon import Keeper
from keeper_devnet.world import KEEPER_KEY, config_text


def monitor_table(**kw: object) -> str:
    lines = ['enabled = true', 'listen = "127.0.0.1:0"']
    for k, v in kw.items():
        lines.append(f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}")
    return "\n[monitor]\n" + "\n".join(lines) + "\n"


async def observed_keeper(world, tmp_path, *, chain_extra: str = "", monitor: dict | None = None,
                          **cfg) -> Keeper:
    """A started keeper for ``world`` with its monitor serving; ``chain_extra`` lines go into [chain]."""
    text = config_text(world, **cfg)
    if chain_extra:
        text = text.replace("[chain]\n", "[chain]\n" + chain_extra + "\n", 1)
    text += monitor_table(**(monitor or {}))
    path = tmp_path / "keeper.toml"
    path.write_text(text)
    keeper = Keeper(load_config(path), Signer(Account.from_key(KEEPER_KEY)))
    try:
        await keeper.start()
        await keeper.serve_monitor()
    except BaseException:
        await keeper.close()
        raise
    return keeper


@contextlib.asynccontextmanager
async def running(keeper: Keeper) -> AsyncIterator[asyncio.Task[None]]:
    """keeper.run in the background until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(keeper.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def until(cond: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> float:
    """Wait for ``cond``; the seconds it took."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


async def scrape(keeper: Keeper) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics parsed by prometheus_client's own parser: (sample name, sorted labels) -> value."""
    assert keeper.monitor is not None
    async with aiohttp.ClientSession() as s, s.get(keeper.monitor.url + "/metrics") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    out = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            out[(smp.name, tuple(sorted(smp.labels.items())))] = smp.value
    return out


async def health(keeper: Keeper) -> tuple[int, dict]:
    assert keeper.monitor is not None
    async with aiohttp.ClientSession() as s, s.get(keeper.monitor.url + "/healthz") as r:
        return r.status, await r.json()


class WebhookReceiver:
    """A local Slack-style webhook: keeps every {"text": ...} POSTed."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook/SECRET"

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.texts.append(body["text"])
        return web.Response(text="ok")

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/hook/SECRET", self._post)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
