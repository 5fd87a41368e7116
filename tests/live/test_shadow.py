"""`keeper shadow` against a competitor: on the devnet a competitor liquidates two Aave positions as
soon as WETH drops (one in the very block of the drop, one in the next), a slower liquidator takes two
more some blocks later; replayed, the shadow report names each winner, counts the two the keeper
would have won (its transaction would have landed in the block after the drop) and gives the lag."""
from __future__ import annotations

import asyncio
import json
import sys

import pytest
from keeper_devnet.protocols.aave_v3.common import account_data
from keeper_devnet.tokens import approve, balance_of, mint, set_price
from keeper_devnet.world import config_text

from keeper.abi import load
from keeper.chain.multicall import calldata
from keeper.config import load_config
from keeper.live.shadow import Shadow
from tests.helpers.keeper import world_with_aave_positions

KEEPER = [sys.executable, "-m", "keeper.cli"]
POOL = load("aave_v3/AaveV3Pool")
GWEI = 10**9
UINT_MAX = 2**256 - 1
# At WETH -30% every one is liquidatable (HF = 0.7 x 0.825 / (0.8 f) < 1).
POSITIONS = [({"WETH": 10}, {"USDC": 24_000 * f}) for f in (0.74, 0.75, 0.77, 0.78)]


async def send(d, sender: str, to: str, data: bytes, tip_gwei: int = 1) -> str:
    """eth_sendTransaction without waiting (the block may not be mined yet)."""
    return await d.rpc("eth_sendTransaction", [{
        "from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(3_000_000),
        "maxPriorityFeePerGas": hex(tip_gwei * GWEI), "maxFeePerGas": hex(200 * GWEI)}])


async def mined(d, tx: str) -> int:
    for _ in range(200):
        r = await d.rpc("eth_getTransactionReceipt", [tx])
        if r is not None:
            assert r["status"] == "0x1", r
            return int(r["blockNumber"], 16)
        await asyncio.sleep(0.02)
    raise AssertionError(f"{tx} not mined")


def liquidation(world, user: str) -> bytes:
    weth, usdc = world.tokens["WETH"].address, world.tokens["USDC"].address
    return POOL.fn("liquidationCall").encode(weth, usdc, user, UINT_MAX, False)


async def competitor_value(d, world, who: str, before: tuple[int, int]) -> float:
    """What the liquidator gained, by its own balances: WETH at the dropped price minus USDC paid."""
    weth, usdc = await balance_of(d, world.tokens["WETH"], who), await balance_of(d, world.tokens["USDC"], who)
    return (weth - before[0]) * 2_100 / 1e18 - (before[1] - usdc) / 1e6


async def test_shadow_names_the_winners_and_counts_what_the_keeper_would_have_won(deployer, snapshot, tmp_path):
    d = deployer
    world = await world_with_aave_positions(d, ("aave_v3",), POSITIONS)
    p1, p2, p3, p4 = world.extra["aave_borrowers"]
    fast, slow = world.take_accounts(2)
    usdc, weth = world.tokens["USDC"], world.tokens["WETH"]
    for who in (fast, slow):
        await mint(d, usdc, who, usdc.units(100_000))
        await approve(d, usdc, who, world.aave.pool, UINT_MAX)
    start = await d.w3.eth.block_number
    bal = {w: (await balance_of(d, weth, w), await balance_of(d, usdc, w)) for w in (fast, slow)}
    # The competitor's liquidation in the very block of the drop (behind it: a lower tip).
    await d.rpc("evm_setAutomine", [False])
    try:
        drop = await send(d, world.admin, weth.feed, calldata("updateAnswer(int256)", ["int256"], [2_100 * 10**8]), 50)
        first = await send(d, fast, world.aave.pool, liquidation(world, p1))
        await d.rpc("evm_mine", [])
    finally:
        await d.rpc("evm_setAutomine", [True])
    block_drop = await mined(d, drop)
    assert await mined(d, first) == block_drop
    l2 = await mined(d, await send(d, fast, world.aave.pool, liquidation(world, p2)))
    v_fast = await competitor_value(d, world, fast, bal[fast])
    for _ in range(3):
        await d.rpc("evm_mine", [])
    l3 = await mined(d, await send(d, slow, world.aave.pool, liquidation(world, p3)))
    l4 = await mined(d, await send(d, slow, world.aave.pool, liquidation(world, p4)))
    v_slow = await competitor_value(d, world, slow, bal[slow])
    for u in (p1, p2, p3, p4):  # each liquidated back to health
        assert (await account_data(d, world.aave, u))[5] > 10**18
    cfg = tmp_path / "keeper.toml"
    cfg.write_text(config_text(world, protocols=["aave_v3"]))
    proc = await asyncio.create_subprocess_exec(
        *KEEPER, "--log-level", "warning", "shadow", "--config", str(cfg), "--from-block", str(start),
        "--to-block", str(l4), "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]
    report = json.loads(out)
    assert report["mode"] == "replay" and report["step_errors"] == []
    rows = {r["account"]: r for r in report["rows"]}
    assert [r["account"] for r in report["rows"]] == [p1, p2, p3, p4]
    assert {u: (rows[u]["winner"], rows[u]["block"]) for u in rows} == {
        p1: (fast, block_drop), p2: (fast, l2), p3: (slow, l3), p4: (slow, l4)}
    # p1 fell in the block that dropped the price: the keeper never saw it liquidatable.
    assert not rows[p1]["seen_liquidatable"] and rows[p1]["send_block"] is None and rows[p1]["lag_blocks"] is None
    # p2: seen at the drop, the keeper's transaction would land in the competitor's block: missed.
    assert rows[p2]["seen_block"] == block_drop and rows[p2]["send_block"] == block_drop + 1 == l2
    assert not rows[p2]["caught"] and rows[p2]["lag_blocks"] == 0
    for u, landed in ((p3, l3), (p4, l4)):
        assert rows[u]["caught"] and rows[u]["send_block"] == block_drop + 1
        assert rows[u]["lag_blocks"] == block_drop + 1 - landed < 0
        assert rows[u]["keeper_predicted_usd"] > 0
    s = report["summary"]
    assert (s["liquidations"], s["caught"], s["share_caught"], s["never_seen"]) == (4, 2, 0.5, 1)
    assert s["value_missed_usd"] == rows[p1]["value_usd"] + rows[p2]["value_usd"]
    assert s["value_missed_usd"] == pytest.approx(v_fast, rel=1e-6)
    assert s["value_caught_usd"] == pytest.approx(v_slow, rel=1e-6)
    # The same replay as a table.
    proc = await asyncio.create_subprocess_exec(
        *KEEPER, "--log-level", "warning", "shadow", "--config", str(cfg), "--from-block", str(start),
        "--to-block", str(l4), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]
    text = out.decode()
    assert "summary: 4 liquidations, the keeper would have caught 2 (50.0%)" in text
    assert text.count(fast) == 2 and text.count(slow) == 2


async def test_shadow_follows_the_head(deployer, snapshot, tmp_path):
    """Following the head (not replaying): the shadow judges a liquidation made while it watches."""
    d = deployer
    world = await world_with_aave_positions(d, ("aave_v3",), POSITIONS[:1])
    (user,) = world.extra["aave_borrowers"]
    (fast,) = world.take_accounts(1)
    usdc = world.tokens["USDC"]
    await mint(d, usdc, fast, usdc.units(100_000))
    await approve(d, usdc, fast, world.aave.pool, UINT_MAX)
    await set_price(d, world.tokens["WETH"], 2_100 * 10**8)
    cfg = tmp_path / "keeper.toml"
    cfg.write_text(config_text(world, protocols=["aave_v3"]))
    sh = Shadow(load_config(cfg))
    await sh.start()
    try:
        task = asyncio.create_task(sh.run(from_block=None, to_block=None, blocks=3, stop=asyncio.Event()))
        for _ in range(300):  # the first block is judged: the user is seen liquidatable
            if sh.sightings or task.done():
                break
            await asyncio.sleep(0.05)
        seen_at = sh.sightings[("aave_v3", user)].first_liquidatable
        landed = await mined(d, await send(d, fast, world.aave.pool, liquidation(world, user)))
        while not task.done():
            await d.rpc("evm_mine", [])
            await asyncio.sleep(0.2)
        report = task.result()
    finally:
        await sh.close()
    assert report.mode == "follow" and report.from_block == seen_at and report.to_block == seen_at + 2
    (row,) = report.rows
    assert (row.account, row.winner, row.block) == (user, fast, landed)
    assert row.seen_liquidatable and row.seen_block == seen_at and row.send_block is not None
    assert row.lag_blocks == row.send_block - landed >= 0 and not row.caught
