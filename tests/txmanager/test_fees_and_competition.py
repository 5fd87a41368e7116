"""Fees and races on Anvil, blocks mined by the test one at a time.

- A base-fee spike leaves the keeper's transactions underpriced (Anvil drops them from its pool;
  geth would keep them waiting, the node-free tests cover that path): they are replaced at their
  nonces with fees raised to the market, the maxFeePerGas capped by max_gas_price_gwei, and mined
  within K blocks; an account that becomes liquidatable meanwhile is sent in the block it does.
- A competitor liquidates the account while the keeper's liquidation waits in the pool (the block
  is full): the re-simulation sees it would revert, and a self-transfer takes its nonce. Nothing of
  the keeper's reverts."""
from __future__ import annotations

import asyncio
import copy
import json
import sqlite3

import pytest
from keeper_devnet.tokens import approve, mint, set_price
from keeper_devnet.world import open_position

from keeper.abi import load
from keeper.chain.fees import GWEI
from tests.helpers.keeper import make_keeper
from tests.protocols.aave_v3.helpers import UINT_MAX, drop_weth, open_scenario
from tests.txmanager.helpers import fresh_keeper, keeper_txs, liquidated_users, mining, wait_for

POOL = load("aave_v3/AaveV3Pool")
K = 2


@pytest.fixture
async def world(deployer, real_world, snapshot):
    await fresh_keeper(deployer, real_world)
    yield copy.deepcopy(real_world)


def journal(db) -> list[dict]:
    with sqlite3.connect(db) as c:
        c.row_factory = sqlite3.Row
        return [dict(r) for r in c.execute(
            "SELECT t.*, a.created_block, a.details FROM transactions t JOIN attempts a ON a.id = t.attempt_id "
            "ORDER BY t.id")]


async def mined_with(d, coro) -> None:
    """Run ``coro`` (a deployer transaction waiting for its receipt) with one block mined for it."""
    task = asyncio.create_task(coro)
    await asyncio.sleep(0.3)
    await d.rpc("evm_mine", [])
    await asyncio.wait_for(task, 30)


async def test_base_fee_spike_replaced_under_the_cap_and_a_new_account_sent_meanwhile(deployer, world, tmp_path):
    users = await open_scenario(deployer, world)
    await drop_weth(deployer, world)  # four accounts below HF 1; users[1] (70% of its LTV) at HF 1.03
    keeper = await make_keeper(world, tmp_path, extra=f"\n[send]\nreplace_after_blocks = {K}\n")
    cap = 50 * GWEI  # config_text's max_gas_price_gwei
    start = await deployer.w3.eth.block_number
    try:
        async with mining(deployer):
            h0 = await keeper.chain.block_number()
            assert len(await keeper.step(h0)) == 4
            await deployer.rpc("anvil_setNextBlockBaseFeePerGas", [hex(30 * GWEI)])
            await deployer.rpc("evm_mine", [])  # h0 + 1: 30 gwei, none of the keeper's fees covers it
            assert await deployer.w3.eth.get_transaction_count(world.keeper_address) == 0
            weth = world.tokens["WETH"]
            await mined_with(deployer, set_price(deployer, weth, weth.price * 65 // 70))  # h0 + 2
            h2 = await keeper.chain.block_number()
            assert h2 == h0 + 2
            sent = await keeper.step(h2)
            assert [o.account for o in sent] == [users[1]]  # liquidatable from this block: sent in it
            await deployer.rpc("evm_mine", [])  # h0 + 3
            await keeper.settle(30)
    finally:
        await keeper.close()
    txs = await keeper_txs(deployer, start)
    assert liquidated_users(txs) == {users[i]: [1] for i in (1, 2, 3, 4, 6)}  # once each, none reverted
    assert all(status == 1 for _, status in txs) and len(txs) == 6
    rows = journal(tmp_path / "keeper.db")
    assert max(r["max_fee"] for r in map(_fees, rows)) == cap  # 2 x base + tip was above it: capped, never more
    first = [r for r in rows if r["created_block"] == h0 and r["replaces"] is None]
    assert len(first) == 5 and all(r["status"] == "dropped" for r in first)  # underpriced: never mined
    mined = {r["nonce"]: r for r in rows if r["status"] == "confirmed"}
    assert sorted(mined) == list(range(6))
    for r in first:  # each replaced at its nonce, fees raised by at least the bump, mined within K blocks
        new = mined[r["nonce"]]
        assert new["replaces"] == r["hash"] and int(new["max_fee"]) >= int(r["max_fee"]) * 1125 // 1000
        assert int(new["max_priority"]) >= int(r["max_priority"]) * 1125 // 1000
        assert new["block"] <= h0 + 1 + K
    late = mined[5]
    assert late["created_block"] == h2 and late["replaces"] is None and late["block"] == h0 + 3
    assert json.loads(late["details"])["record"]["account"] == users[1]


def _fees(r: dict) -> dict:
    return {**r, "max_fee": int(r["max_fee"])}


async def test_a_competitor_liquidates_first_ours_is_cancelled_not_reverted(deployer, world, tmp_path):
    user, rival = world.take_accounts(2)
    await open_position(deployer, world, user, {"WETH": 10}, {"USDC": 19_200})  # HF 0.90 after the drop
    usdc, weth = world.tokens["USDC"], world.tokens["WETH"]
    await mint(deployer, usdc, rival, 100_000 * 10**6)
    await approve(deployer, usdc, rival, world.aave.pool, UINT_MAX)
    await drop_weth(deployer, world)
    record = tmp_path / "out.jsonl"
    keeper = await make_keeper(world, tmp_path, record_file=str(record))
    db = tmp_path / "keeper.db"
    start = await deployer.w3.eth.block_number
    try:
        async with mining(deployer):
            (pending,) = await keeper.step(await keeper.chain.block_number())
            approval, ours = journal(db)
            assert ours["hash"] == pending.tx_hash
            # The next block has room for the rival's liquidation and our approval, not our liquidation.
            rival_gas = ours["gas_limit"]
            await deployer.rpc("anvil_setBlockGasLimit", [hex(rival_gas + approval["gas_limit"] + 50_000)])
            call = POOL.fn("liquidationCall").encode(weth.address, usdc.address, user, UINT_MAX, False)
            theirs = await deployer.rpc("eth_sendTransaction", [{
                "from": rival, "to": world.aave.pool, "data": "0x" + call.hex(), "gas": hex(rival_gas),
                "maxFeePerGas": hex(40 * GWEI), "maxPriorityFeePerGas": hex(20 * GWEI)}])
            await deployer.rpc("evm_mine", [])
            assert (await deployer.w3.eth.get_transaction_receipt(theirs))["status"] == 1
            assert await deployer.w3.eth.get_transaction_count(world.keeper_address) == 1  # only the approval

            async def cancel_sent() -> bool:
                return any(r["kind"] == "cancel" for r in journal(db))
            await wait_for("the keeper's cancel", cancel_sent, timeout=30)
            await deployer.rpc("evm_mine", [])
            await keeper.settle(30)
    finally:
        await deployer.rpc("anvil_setBlockGasLimit", [hex(30_000_000)])
        await keeper.close()
    txs = await keeper_txs(deployer, start)
    assert liquidated_users(txs) == {}  # ours never ran
    assert [(tx["to"], tx["value"], bytes(tx["input"]), s) for tx, s in txs][1] == (
        world.keeper_address, 0, b"", 1)  # the self-transfer at our liquidation's nonce
    assert all(s == 1 for _, s in txs)
    (o,) = [o for o in keeper.recorder.outcomes if o.attempt is not None]
    assert o.status.value == "cancelled" and o.account == user and o.realised_profit < 0
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    assert [x["status"] for x in lines] == ["pending", "cancelled"]
    assert await deployer.rpc("eth_getTransactionReceipt", [ours["hash"]]) is None
