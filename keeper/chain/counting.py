"""A Transport wrapper that reports every JSON-RPC request (per method and endpoint, and whether it
failed), the transactions sent and the receipts seen, to the keeper's telemetry."""
from __future__ import annotations

import contextlib
from typing import Any, Protocol
from urllib.parse import urlsplit

from keeper.chain.rpc import Request, Transport


def endpoint_label(url: str) -> str:
    """``host:port`` of an RPC URL: never its path, query or credentials (API keys live there)."""
    u = urlsplit(url)
    return f"{u.hostname}:{u.port}" if u.port else (u.hostname or "?")


class RpcObserver(Protocol):
    def rpc_call(self, endpoint: str, method: str, ok: bool) -> None: ...
    def tx_sent(self, tx_hash: str) -> None: ...
    def tx_mined(self, tx_hash: str, status: int) -> None: ...


def _ok(resp: Any) -> bool:
    return isinstance(resp, dict) and "result" in resp and "error" not in resp


class CountingTransport:
    def __init__(self, inner: Transport, observer: RpcObserver, endpoint: str):
        self.inner = inner
        self.observer = observer
        self.endpoint = endpoint

    def _seen(self, ep: str, method: str, params: list[Any], resp: Any) -> None:
        ok = _ok(resp)
        self.observer.rpc_call(ep, method, ok)
        if not ok:
            return
        result = resp["result"]
        if method == "eth_sendRawTransaction" and isinstance(result, str):
            self.observer.tx_sent(result)
        elif method == "eth_getTransactionReceipt" and isinstance(result, dict) and params:
            with contextlib.suppress(ValueError):
                self.observer.tx_mined(str(params[0]), int(str(result.get("status", "0x0")), 16))

    async def send(self, method: str, params: list[Any]) -> Any:
        try:
            resp = await self.inner.send(method, params)
        except Exception:
            self.observer.rpc_call(self.endpoint, method, False)
            raise
        self._seen(self.endpoint, method, params, resp)
        return resp

    async def send_batch(self, requests: list[Request]) -> Any:
        try:
            resp = await self.inner.send_batch(requests)
        except Exception:
            for m, _ in requests:
                self.observer.rpc_call(self.endpoint, m, False)
            raise
        ep = self.endpoint
        if isinstance(resp, list) and len(resp) == len(requests):
            for (m, p), r in zip(requests, resp, strict=True):
                self._seen(ep, m, p, r)
        else:
            for m, _ in requests:
                self.observer.rpc_call(ep, m, False)
        return resp

    async def close(self) -> None:
        await self.inner.close()
