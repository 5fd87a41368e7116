"""New heads from a real Anvil: through the WebSocket subscription, through polling while the
stream is cut (a TCP proxy in front of the node's WebSocket is closed), back through the stream once
it returns; every block number handed out exactly once, in order."""
from __future__ import annotations

import asyncio
import contextlib

import pytest

from keeper.chain.heads import Head, HeadSource
from keeper.chain.rpc import Rpc
from keeper_devnet.anvil import Anvil, free_port

pytestmark = pytest.mark.anvil


class CuttableProxy:
    """Forwards TCP connections on ``port`` to the node; ``cut()`` closes them all and refuses new
    ones until ``restore()``."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", self.port)

    async def _conn(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.writers += [w, uw]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.close()
        self.writers = []
        self.server = None

    async def restore(self) -> None:
        await self.start()


async def wait_for(heads: HeadSource, got: list[Head], number: int, timeout: float = 10) -> Head:
    async def until() -> Head:
        while True:
            h = await heads.next()
            assert h is not None
            got.append(h)
            if h.number >= number:
                return h
    return await asyncio.wait_for(until(), timeout)


async def test_heads_stream_fall_back_to_polling_and_recover():
    node = await Anvil.start()
    rpc = Rpc(node.url)
    proxy = CuttableProxy(node.port)
    await proxy.start()

    async def block_number() -> int:
        return int(await rpc.request("eth_blockNumber", []), 16)

    async def mine(n: int = 1) -> int:
        for _ in range(n):
            await rpc.request("evm_mine", [])
        return await block_number()

    got: list[Head] = []
    heads = HeadSource(block_number, f"ws://127.0.0.1:{proxy.port}", 0.2, ws_retry_seconds=0.5)
    try:
        async with heads:
            first = await wait_for(heads, got, 0)
            for _ in range(50):  # subscribed (the first head may come from the poll made on connecting)
                if heads.ws_connects:
                    break
                await asyncio.sleep(0.05)
            polls = heads.polls
            for _ in range(3):
                h = await wait_for(heads, got, await mine())
                assert h.via == "ws"
            assert heads.polls == polls  # nothing polled while the stream is up

            await proxy.cut()
            for _ in range(40):
                if heads.ws_drops:
                    break
                await asyncio.sleep(0.05)
            assert heads.ws_drops == 1
            for _ in range(3):
                h = await wait_for(heads, got, await mine())
                assert h.via == "poll"
            await mine(2)  # two blocks at once while polling: one range, nothing skipped
            await wait_for(heads, got, await block_number())

            await proxy.restore()
            for _ in range(60):
                if heads.ws_connects == 2:
                    break
                await asyncio.sleep(0.05)
            assert heads.ws_connects == 2
            for _ in range(3):
                h = await wait_for(heads, got, await mine())
                assert h.via == "ws"
    finally:
        await proxy.cut()
        await rpc.close()
        await node.stop()
    numbers = [n for h in got for n in range(h.first, h.number + 1)]
    assert numbers == list(range(first.number, got[-1].number + 1))  # each block once, in order
    assert got[-1].number == first.number + 11


async def test_heads_poll_when_no_websocket_is_configured():
    node = await Anvil.start()
    rpc = Rpc(node.url)

    async def block_number() -> int:
        return int(await rpc.request("eth_blockNumber", []), 16)

    got: list[Head] = []
    try:
        async with HeadSource(block_number, None, 0.1) as heads:
            await wait_for(heads, got, 0)
            await rpc.request("anvil_mine", ["0x3"])
            h = await wait_for(heads, got, 3)
    finally:
        await rpc.close()
        await node.stop()
    assert (h.first, h.number, h.via) == (1, 3, "poll") and heads.ws_connects == 0
