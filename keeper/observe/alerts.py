"""Alerts to an operator: a warning log line, and a POST of ``{"text": ...}`` to a webhook when one
is configured (the shape Slack incoming webhooks, Discord's /slack endpoint and most Telegram relays
accept). A condition alerts once and stays quiet until it clears; one-off events (a liquidation
confirmed) alert each time."""
from __future__ import annotations

import asyncio
from enum import StrEnum
from urllib.parse import urlsplit

import aiohttp
import structlog

log = structlog.get_logger()


class Condition(StrEnum):
    WALLET_LOW = "wallet_low"
    HEAD_STALE = "head_stale"
    STEP_FAILURES = "step_failures"


def _where(url: str) -> str:
    """The webhook's host only: its path usually holds the secret token."""
    return urlsplit(url).hostname or "?"


class Alerter:
    def __init__(self, webhook_url: str | None = None, *, timeout: float = 5.0, prefix: str = "keeper"):
        self.url = webhook_url
        self.timeout = timeout
        self.prefix = prefix
        self.active: set[Condition] = set()
        self.sent = 0  # POSTs that the webhook accepted
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def raise_(self, cond: Condition, text: str) -> bool:
        """Alert ``cond`` unless it is already raised; True when an alert went out."""
        if cond in self.active:
            return False
        self.active.add(cond)
        self._emit(text, condition=cond.value)
        return True

    def clear(self, cond: Condition, text: str | None = None) -> None:
        """The condition is over: the next ``raise_`` alerts again (``text``: say it recovered)."""
        if cond in self.active:
            self.active.discard(cond)
            if text:
                self._emit(text, condition=cond.value, cleared=True)

    def event(self, text: str) -> None:
        """A one-off event (not rate-limited: each is a different event)."""
        self._emit(text)

    def _emit(self, text: str, **kw: object) -> None:
        log.warning("alert", text=text, **kw)
        if self.url is None:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._post(f"{self.prefix}: {text}"))
        except RuntimeError:  # no loop (a synchronous caller): the log line is the alert
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, text: str) -> None:
        assert self.url is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._session.post(self.url, json={"text": text}) as r:
                if r.status >= 300:
                    log.warning("alert.webhook_refused", status=r.status, host=_where(self.url))
                else:
                    self.sent += 1
        except (TimeoutError, aiohttp.ClientError) as e:
            log.warning("alert.webhook_failed", error=type(e).__name__, host=_where(self.url))

    async def flush(self) -> None:
        """Wait for the POSTs under way."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.flush()
        if self._session is not None:
            await self._session.close()
            self._session = None
