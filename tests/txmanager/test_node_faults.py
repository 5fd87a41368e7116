"""The node loses what the keeper sent: its pool emptied (a restart without the mempool), or its
chain taken back by evm_revert after the liquidations were mined. The transaction manager notices
(the node's nonce for the signer below what the journal has sent), puts the same signed bytes back,
plans nothing new for those accounts, and every account is liquidated once on the chain that stays,
with no reverted transaction."""
from __future__ import annotations

import copy

import pytest

from tests.helpers.keeper import make_keeper
from tests.protocols.aave_v3.helpers import drop_weth, open_scenario
from tests.txmanager.helpers import fresh_keeper, keeper_txs, liquidated_users, mining

UNHEALTHY = (2, 3, 4, 6)  # the scenario's accounts below HF 1 after the drop


@pytest.fixture
async def world(deployer, real_world, snapshot):
    await fresh_keeper(deployer, real_world)
    yield copy.deepcopy(real_world)


async def pool_hashes(d, sender: str) -> set[str]:
    content = await d.rpc("txpool_content", [])
    return {tx["hash"] for tx in content["pending"].get(sender.lower(), {}).values()}


async def test_node_restarted_without_its_pool(deployer, world, tmp_path):
    users = await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    keeper = await make_keeper(world, tmp_path)
    start = await deployer.w3.eth.block_number
    try:
        async with mining(deployer):
            sent = await keeper.step(await keeper.chain.block_number())
            assert len(sent) == 4
            flying = await pool_hashes(deployer, world.keeper_address)
            assert len(flying) == 5  # an approval and four liquidations
            await deployer.rpc("anvil_dropAllTransactions", [])  # the node lost its mempool
            await deployer.rpc("evm_mine", [])
            again = await keeper.step(await keeper.chain.block_number())
            assert again == []  # nothing new planned: every account is in flight
            assert await pool_hashes(deployer, world.keeper_address) == flying  # the same bytes, back
            await deployer.rpc("evm_mine", [])
            await keeper.settle(30)
    finally:
        await keeper.close()
    by_user = liquidated_users(await keeper_txs(deployer, start))
    assert by_user == {users[i]: [1] for i in UNHEALTHY}
    assert len(keeper.recorder.report()["liquidations"]) == 4


async def test_rollback_by_evm_revert_liquidates_once_on_the_chain_that_stays(deployer, world, tmp_path):
    users = await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    record = tmp_path / "out.jsonl"
    keeper = await make_keeper(world, tmp_path, record_file=str(record))
    try:
        snap = await deployer.rpc("evm_snapshot", [])
        fork = await deployer.w3.eth.block_number
        await keeper.step(fork)
        await keeper.settle(30)
        first = {o["tx_hash"] for o in keeper.recorder.report()["liquidations"]}
        assert len(first) == 4
        await deployer.rpc("evm_revert", [snap])  # the liquidations' blocks are gone
        assert await deployer.w3.eth.get_transaction_count(world.keeper_address) == 0
        again = await keeper.step(await keeper.chain.block_number())
        assert again == []  # the journal put them back in flight before anything was planned
        await keeper.settle(30)
    finally:
        await keeper.close()
    txs = await keeper_txs(deployer, fork)
    assert liquidated_users(txs) == {users[i]: [1] for i in UNHEALTHY}
    assert len(txs) == 5 and all(status == 1 for _, status in txs)  # no duplicate, no revert
    report = keeper.recorder.report()
    assert {o["tx_hash"] for o in report["liquidations"]} == first  # the same transactions, mined again
    assert report["reverted"] == report["failed"] == report["pending"] == []
