"""Start and stop a local Anvil node (the binary pinned in package.json)."""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field

import aiohttp

from keeper_devnet.solc import NODE_MODULES

ANVIL_BIN = NODE_MODULES / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
# Anvil's default mnemonic ("test test ... junk") dev accounts 0..9.
DEV_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
]


class AnvilError(RuntimeError):
    pass


# Anvil keeps recent states in memory and writes older ones to disk, by default without bound
# and under ~/.foundry/anvil/tmp, where a killed node leaves them: one long test run wrote 33 GB
# there. Each node gets its own cache directory (removed on stop, or by the next start once its
# process is gone) and keeps at most this many states on disk.
MAX_PERSISTED_STATES = 32
CACHE_PREFIX = "keeper-anvil-"


def _sweep_stale_caches() -> None:
    """Remove cache directories whose Anvil process is gone (a node killed with its test run)."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        if not name.startswith(CACHE_PREFIX):
            continue
        path = os.path.join(root, name)
        try:
            with open(os.path.join(path, "pid")) as f:
                pid = int(f.read().strip())
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            # No pid file yet: a node starting right now, unless the directory is old.
            try:
                if os.path.getmtime(path) > time.time() - 600:
                    continue
            except OSError:
                continue
        shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Anvil:
    """A running Anvil process. Use ``async with Anvil.start(...) as node`` or call stop()."""

    port: int
    process: asyncio.subprocess.Process
    args: list[str] = field(default_factory=list)
    cache_dir: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    async def start(
        cls,
        port: int | None = None,
        *,
        fork_url: str | None = None,
        block_time: int | None = None,
        extra: list[str] | None = None,
        timeout: float = 15.0,
    ) -> Anvil:
        if not ANVIL_BIN.exists():
            raise AnvilError(f"anvil not found at {ANVIL_BIN}: run ./scripts/setup (npm ci)")
        port = port or free_port()
        _sweep_stale_caches()
        cache_dir = tempfile.mkdtemp(prefix=CACHE_PREFIX)
        args = [str(ANVIL_BIN), "--port", str(port), "--host", "127.0.0.1", "--silent",
                "--code-size-limit", "40000", "--cache-path", cache_dir]
        if "--prune-history" not in (extra or []):  # Anvil refuses both (pruning persists no state)
            args += ["--max-persisted-states", str(MAX_PERSISTED_STATES)]
        if fork_url:
            args += ["--fork-url", fork_url]
        if block_time:
            args += ["--block-time", str(block_time)]
        args += extra or []
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        with open(os.path.join(cache_dir, "pid"), "w") as f:
            f.write(str(proc.pid))
        node = cls(port=port, process=proc, args=args, cache_dir=cache_dir)
        try:
            await node._wait_ready(timeout)
        except BaseException:
            await node.stop()
            raise
        return node

    async def _wait_ready(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        async with aiohttp.ClientSession() as s:
            while loop.time() < deadline:
                if self.process.returncode is not None:
                    err = (await self.process.stderr.read()).decode()[-1000:]
                    raise AnvilError(f"anvil exited with {self.process.returncode}: {err}")
                try:
                    async with s.post(self.url, json=payload) as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AnvilError(f"anvil did not answer on {self.url} within {timeout}s")

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.cache_dir:
            shutil.rmtree(self.cache_dir, ignore_errors=True)

    async def __aenter__(self) -> Anvil:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()
