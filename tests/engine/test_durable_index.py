"""The durable index (SQLite store): a restarted keeper resumes discovery after its checkpoint without
reading older logs again (every eth_getLogs range it sends is counted), and a reorg made with
evm_snapshot / evm_revert and different blocks is detected, the index rolled back to the fork point
and the new blocks indexed."""
from __future__ import annotations

import copy

import pytest
from eth_account import Account

from keeper.abi import load
from keeper.chain.multicall import Call
from keeper.chain.signer import Signer
from keeper.config import load_config
from keeper.engine.daemon import Keeper
from keeper.protocols.aave_v3.adapter import AaveV3Adapter
from keeper.store import SqliteStore
from keeper_devnet.world import KEEPER_KEY, config_text, open_position

POOL = load("aave_v3/AaveV3Pool")


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


async def started(world, tmp_path, store) -> tuple[Keeper, list[int]]:
    """A started keeper on ``store``, and the list every eth_getLogs fromBlock it sends goes into."""
    path = tmp_path / "keeper.toml"
    path.write_text(config_text(world))
    keeper = Keeper(load_config(path), Signer(Account.from_key(KEEPER_KEY)), store=store)
    ranges: list[int] = []
    batch = keeper.rpc.batch

    async def counting(calls, **kw):
        calls = list(calls)
        ranges.extend(int(p[0]["fromBlock"], 16) for m, p in calls if m == "eth_getLogs")
        return await batch(calls, **kw)
    keeper.rpc.batch = counting  # type: ignore[method-assign]
    await keeper.start()
    return keeper, ranges


async def mirror_matches_chain(keeper: Keeper, block: int) -> None:
    a = keeper.by_name["aave_v3"]
    assert isinstance(a, AaveV3Adapter) and a.mirror is not None
    fn = POOL.fn("getUserAccountData")
    users = sorted(a.users)
    res = await keeper.chain.multicall_strict([Call(a.pool, fn.encode(u), fn.decode) for u in users], block)
    terms = a.mirror.terms()
    for u, d in zip(users, res):
        mine = a.mirror.account(u, terms)
        assert (mine.total_collateral_base, mine.total_debt_base, mine.health_factor) == (d[0], d[1], d[5]), u


async def test_restart_resumes_after_the_checkpoint(deployer, world, tmp_path):
    first, later = world.take_accounts(2)
    await open_position(deployer, world, first, {"WETH": 10}, {"USDC": 10_000})
    db = tmp_path / "keeper.db"
    store = await SqliteStore.open(db)
    keeper, ranges = await started(world, tmp_path, store)
    try:
        head = await keeper.chain.block_number()
        await keeper.step(head)
        assert ranges and min(ranges) == 0  # the first run reads from start_block
        cp = await store.checkpoint("aave_v3", "discovery")
        assert cp is not None and cp.block == head
        assert first in await store.accounts("aave_v3")
    finally:
        await keeper.close()
        await store.close()

    await open_position(deployer, world, later, {"WBTC": 1}, {"USDC": 20_000})
    store = await SqliteStore.open(db)
    keeper, ranges = await started(world, tmp_path, store)
    try:
        a = keeper.by_name["aave_v3"]
        assert isinstance(a, AaveV3Adapter)
        assert first in a.users  # from the store, before any log is read
        assert a.mirror is not None and first in a.mirror.users  # its positions too
        now = await keeper.chain.block_number()
        await keeper.step(now)
        assert ranges and min(ranges) == head + 1  # nothing at or before the checkpoint read again
        assert a.mirror.stats.reread == 1  # only `later`, named by the new blocks' logs, read from chain
        assert {first, later} <= set(a.users)
        assert later in await store.accounts("aave_v3")
        await mirror_matches_chain(keeper, now)
    finally:
        await keeper.close()
        await store.close()


async def test_reorg_rolls_the_index_back_and_indexes_the_new_blocks(deployer, world, tmp_path):
    gone, kept = world.take_accounts(2)
    store = await SqliteStore.open(tmp_path / "keeper.db")
    keeper, ranges = await started(world, tmp_path, store)
    try:
        await keeper.step(await keeper.chain.block_number())
        fork = await keeper.chain.block_number()
        snap = await deployer.rpc("evm_snapshot", [])
        await open_position(deployer, world, gone, {"WETH": 10}, {"USDC": 10_000})
        await keeper.step(await keeper.chain.block_number())
        assert gone in await store.accounts("aave_v3")

        await deployer.rpc("evm_revert", [snap])  # the blocks that indexed `gone` are replaced
        await deployer.rpc("evm_mine", [])
        await open_position(deployer, world, kept, {"WBTC": 1}, {"USDC": 20_000})
        for _ in range(4):
            await deployer.rpc("evm_mine", [])  # the new chain is longer than the old one
        ranges.clear()
        head = await keeper.chain.block_number()
        await keeper.step(head)
        assert keeper.discovery.reorgs == 1
        stored = await store.accounts("aave_v3")
        assert gone not in stored and kept in stored
        cp = await store.checkpoint("aave_v3", "discovery")
        assert cp is not None and cp.block == head
        assert cp.block_hash == (await keeper.chain.get_block(head))["hash"]
        assert min(ranges) == fork + 1  # read again from just after the fork point
        await mirror_matches_chain(keeper, head)  # `gone` has no position on this chain
    finally:
        await keeper.close()
        await store.close()
