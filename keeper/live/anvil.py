"""Find and run the Anvil binary (Foundry's local node) for fork rehearsals.

The runtime package does not depend on the devnet package: the binary is the ``--anvil`` flag's,
else ``$KEEPER_ANVIL``, else ``anvil`` on PATH, else the one a source checkout installs with npm
(node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil)."""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import aiohttp

from keeper.errors import ConfigError, StartupError

ANVIL_ENV = "KEEPER_ANVIL"
_CHECKOUT_BIN = (Path(__file__).resolve().parents[2] / "node_modules" / "@foundry-rs" / "anvil-linux-amd64"
                 / "bin" / "anvil")


def find_anvil(flag: str | None = None) -> str:
    """The Anvil binary to run, or a ConfigError naming where it was looked for."""
    for what, given in (("--anvil", flag), (ANVIL_ENV, os.environ.get(ANVIL_ENV))):
        if given:
            path = shutil.which(given) or (given if Path(given).is_file() else None)
            if path is None or not os.access(path, os.X_OK):
                raise ConfigError(f"{what}: {given} is not an executable file")
            return path
    found = shutil.which("anvil")
    if found:
        return found
    if _CHECKOUT_BIN.is_file() and os.access(_CHECKOUT_BIN, os.X_OK):
        return str(_CHECKOUT_BIN)
    raise ConfigError(f"no anvil binary: give --anvil PATH or set {ANVIL_ENV}, put Foundry's anvil on PATH "
                      "(https://book.getfoundry.sh), or run the keeper from a checkout after ./scripts/setup")


def redact(url: str) -> str:
    """scheme://host[:port] of a URL: its path, query and user info may hold an API key."""
    try:
        u = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    host = u.hostname or "?"
    return f"{u.scheme}://{host}" + (f":{u.port}" if u.port else "") + ("/…" if u.path.strip("/") or u.query else "")


def check_url(url: str, what: str) -> None:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ConfigError(f"{what}: must be an http:// or https:// URL, got {redact(url)!r}")


async def check_reachable(url: str, what: str) -> None:
    """A StartupError (the URL shown without path, query or credentials) unless the node answers."""
    from keeper.chain.rpc import Rpc
    check_url(url, what)
    rpc = Rpc(url, timeout=15, attempts=2)
    try:
        await rpc.request("eth_chainId", [])
    except Exception as e:
        raise StartupError(f"{what}: cannot reach the node at {redact(url)} ({type(e).__name__})") from None
    finally:
        await rpc.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ForkNode:
    """An Anvil process forking a chain; ``async with await ForkNode.start(...)`` stops it."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, secret: str):
        self.process = process
        self.port = port
        self._secret = secret  # the fork URL, kept out of every message

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    async def start(cls, binary: str, fork_url: str, *, fork_block: int, chain_id: int, block_time: float,
                    base_fee: int, timeout: float = 60.0) -> ForkNode:
        port = free_port()
        args = [binary, "--port", str(port), "--host", "127.0.0.1", "--silent", "--fork-url", fork_url,
                "--fork-block-number", str(fork_block), "--chain-id", str(chain_id),
                "--block-time", f"{block_time:g}", "--base-fee", str(base_fee),
                "--no-storage-caching"]  # nothing of the real chain is written to disk
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        node = cls(proc, port, fork_url)
        try:
            await node._wait_ready(timeout)
        except BaseException:
            await node.stop()
            raise
        return node

    def _hide(self, text: str) -> str:
        return text.replace(self._secret, redact(self._secret))

    async def _wait_ready(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        async with aiohttp.ClientSession() as s:
            while loop.time() < deadline:
                if self.process.returncode is not None:
                    assert self.process.stderr is not None
                    err = self._hide((await self.process.stderr.read()).decode(errors="replace"))[-800:]
                    raise StartupError(f"anvil (forking {redact(self._secret)}) exited with status "
                                       f"{self.process.returncode}: {err.strip()}")
                try:
                    async with s.post(self.url, json=payload) as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise StartupError(f"anvil forking {redact(self._secret)} did not answer within {timeout:g}s")

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
