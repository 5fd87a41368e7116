"""Helpers for the transaction manager's tests on Anvil: the keeper's own transactions read back
from the chain (Aave liquidationCall's user, status), mining modes restored after a test, the keeper
run as a separate process, the record file's last line per attempt."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from eth_utils import keccak, to_checksum_address
from keeper_devnet.world import KEEPER_ADDRESS, KEEPER_KEY, KEEPER_KEY_ENV

KEEPER = [sys.executable, "-m", "keeper.cli"]
KEY_HEX = KEEPER_KEY.removeprefix("0x").lower()
LIQUIDATION_CALL = keccak(text="liquidationCall(address,address,address,uint256,bool)")[:4]


async def keeper_txs(d, since_block: int, sender: str = KEEPER_ADDRESS) -> list[tuple[dict[str, Any], int]]:
    """Every mined transaction from ``sender`` after ``since_block``, with its receipt status."""
    out = []
    head = await d.w3.eth.block_number
    for n in range(since_block + 1, head + 1):
        block = await d.w3.eth.get_block(n, full_transactions=True)
        for tx in block["transactions"]:
            if tx["from"] == sender:
                receipt = await d.w3.eth.get_transaction_receipt(tx["hash"])
                out.append((tx, receipt["status"]))
    return out


def liquidated_users(txs: list[tuple[dict[str, Any], int]]) -> dict[str, list[int]]:
    """Aave liquidationCall user -> the statuses of the keeper's liquidations of it, on chain."""
    out: dict[str, list[int]] = {}
    for tx, status in txs:
        data = bytes(tx["input"])
        if data[:4] == LIQUIDATION_CALL:
            user = to_checksum_address(data[4 + 64 + 12:4 + 96])
            out.setdefault(user, []).append(status)
    return out


@contextlib.asynccontextmanager
async def mining(d, *, interval: int | None = None) -> AsyncIterator[None]:
    """Automine off (and interval mining when ``interval``) inside, automine again after."""
    await d.rpc("evm_setAutomine", [False])
    if interval:
        await d.rpc("evm_setIntervalMining", [interval])
    try:
        yield
    finally:
        await d.rpc("evm_setIntervalMining", [0])
        await d.rpc("evm_setAutomine", [True])


async def wait_for(what: str, check: Callable[[], Awaitable[bool]], timeout: float = 60.0, step: float = 0.1) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(step)


async def spawn_keeper(config: Path, output: Path, *args: str,
                       env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """``keeper --log-json run --config config`` in its own process, the key in its environment;
    everything it prints is appended to ``output``."""
    environ = {**os.environ, KEEPER_KEY_ENV: KEEPER_KEY, **(env or {})}
    with output.open("ab") as out:
        return await asyncio.create_subprocess_exec(*KEEPER, "--log-json", "run", "--config", str(config), *args,
                                                    env=environ, stdout=out, stderr=out)


def last_status(record: Path) -> dict[int, dict[str, Any]]:
    """The record file's last line of each attempt."""
    out: dict[int, dict[str, Any]] = {}
    if record.exists():
        for line in record.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("attempt") is not None:
                out[rec["attempt"]] = rec
    return out


def log_events(output: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in output.read_text().splitlines() if x.startswith("{")]


async def fresh_keeper(d, world) -> None:
    """Inside the test's snapshot: the keeper's address as these tests assume it, whatever an
    earlier test left on the shared node outside a snapshot (a rerun's late transaction): no
    allowance for the Pool, nonce 0."""
    from keeper_devnet.tokens import approve
    from keeper_devnet.world import KEEPER_ADDRESS

    pool = world.aave.pool
    for token in world.tokens.values():
        if await d.call(token.address, _ALLOWANCE_ABI, "allowance", KEEPER_ADDRESS, pool):
            await approve(d, token, KEEPER_ADDRESS, pool, 0)
    await d.rpc("anvil_setNonce", [KEEPER_ADDRESS, "0x0"])


_ALLOWANCE_ABI = [{"type": "function", "name": "allowance", "stateMutability": "view",
                   "inputs": [{"name": "o", "type": "address"}, {"name": "s", "type": "address"}],
                   "outputs": [{"name": "", "type": "uint256"}]}]
