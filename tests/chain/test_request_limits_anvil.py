"""Requests that fit, on Anvil: a multicall of 5,000 Aave account reads (about 1.35 kB of calldata
each, some 6.7 MB in all: more than three times what Anvil accepts in one request) succeeds with no
request over the limit; and with a limit set above Anvil's, its "-32600 Invalid request" answer
lowers the limit and the same step still succeeds, and the next one sends nothing too large."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.anvil import free_port
from keeper_devnet.protocols.aave_v3.common import POOL_USER_ABI
from keeper_devnet.world import open_position

from keeper.chain.client import Chain
from keeper.chain.multicall import Call, calldata, returns
from keeper.chain.rpc import Rpc
from tests.helpers.recording_proxy import RecordingProxy

MIB = 1 << 20
ANVIL_ACCEPTS = 2_000_000  # measured: 2.0 MB accepted, 2.2 MB refused


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


@pytest.fixture
async def proxy(anvil):
    p = await RecordingProxy(anvil.url, free_port()).start()
    yield p
    await p.stop()


def account_reads(world, users: list[str]) -> list[Call]:
    """Per account: the Pool's getUserAccountData and getUserConfiguration, and its USDC balance."""
    pool, usdc = world.aave.pool, world.tokens["USDC"].address
    out = []
    for u in users:
        out += [Call(pool, calldata("getUserAccountData(address)", ["address"], [u]), returns(*["uint256"] * 6)),
                Call(pool, calldata("getUserConfiguration(address)", ["address"], [u]), returns("uint256")),
                Call(usdc, calldata("balanceOf(address)", ["address"], [u]), returns("uint256"))]
    return out


async def five_thousand(deployer, world) -> tuple[str, list[str]]:
    [borrower] = world.take_accounts(1)
    await open_position(deployer, world, borrower, {"WETH": 10}, {"USDC": 9_000})
    users = [borrower] + [deployer.w3.to_checksum_address(f"0x{0xbeef0000 + i:040x}") for i in range(4_999)]
    return borrower, users


async def check(deployer, world, borrower: str, users: list[str], results: list) -> None:
    assert len(results) == 3 * len(users)
    account = await deployer.call(world.aave.pool, POOL_USER_ABI, "getUserAccountData", borrower)
    assert results[0] == tuple(account) and account[1] > 0  # the borrower's debt, as the Pool says
    assert results[1] != 0  # its user configuration has borrowing and collateral bits
    assert results[2] == world.tokens["USDC"].units(9_000)
    assert all(r == (0, 0, 0, 0, 0, 2**256 - 1) for r in results[3::3])  # nobody else has a position
    assert all(r == 0 for i, r in enumerate(results) if i >= 3 and i % 3)


async def test_5000_account_reads_without_any_request_over_the_limit(deployer, world, proxy):
    borrower, users = await five_thousand(deployer, world)
    calls = account_reads(world, users)
    chain = Chain(Rpc(proxy.url))  # default limit: 1 MiB
    try:
        results = await chain.multicall(calls)
    finally:
        await chain.rpc.close()
    await check(deployer, world, borrower, users, results)
    sizes = [p.size for p in proxy.posts]
    assert sum(sizes) > 3 * ANVIL_ACCEPTS  # one request would have been far over Anvil's limit
    assert max(sizes) <= MIB
    assert not any(p.refused for p in proxy.posts)
    assert len(sizes) <= sum(sizes) // (MIB // 2) + 1  # requests are filled, not tiny


async def test_anvil_refusing_a_request_lowers_the_limit(deployer, world, proxy):
    borrower, users = await five_thousand(deployer, world)
    calls = account_reads(world, users)
    # A limit above what Anvil accepts (but below the size at which it drops the connection).
    chain = Chain(Rpc(proxy.url), max_request_bytes=3 * MIB, multicall_chunk=10_000)
    try:
        results = await chain.multicall(calls)
        await check(deployer, world, borrower, users, results)
        refused = [p for p in proxy.posts if p.refused]
        assert refused and all(p.size > ANVIL_ACCEPTS for p in refused)  # Anvil's own answer, to big ones
        assert chain.limits.max_bytes <= ANVIL_ACCEPTS
        proxy.posts.clear()
        await check(deployer, world, borrower, users, await chain.multicall(calls))  # the next step
        assert not any(p.refused for p in proxy.posts)
        assert max(p.size for p in proxy.posts) <= chain.limits.max_bytes
    finally:
        await chain.rpc.close()
