"""5,000 Aave V3 borrowers on the real Pool, opened in bulk (a helper contract opens 40 positions per
transaction): the keeper mirrors them and liquidates exactly the ones a price drop makes unhealthy,
with no request over its configured limit (256 KiB, far below what 5,000 accounts need at once),
and an idle block costs one request for the Aave mirror."""
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
from keeper_devnet.anvil import free_port
from keeper_devnet.solc import compile_contract
from keeper_devnet.tokens import set_price
from keeper_devnet.world import KEEPER_KEY, config_text
from tests.helpers.recording_proxy import RecordingProxy

pytestmark = pytest.mark.anvil
BULK = "devnet/keeper_devnet/protocols/aave_v3/BulkBorrowers.sol"
POOL = load("aave_v3/AaveV3Pool")
LIMIT = 256 << 10
N, PER_TX, WEAK = 5_000, 40, 10
WETH_EACH = 5 * 10**17  # 0.5 WETH (1,500 USD) of collateral each


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


@pytest.fixture
async def proxy(anvil):
    p = await RecordingProxy(anvil.url, free_port()).start()
    yield p
    await p.stop()


async def open_borrowers(deployer, world) -> dict[str, int]:
    """N borrowers of USDC against WETH: WEAK of them at 1,150 USDC (HF 1.08, 0.75 after a 30% drop),
    the others at 500 USDC (HF 2.5, 1.7 after it). Returns borrower -> USDC debt."""
    art = await compile_contract(BULK, "BulkBorrowers")
    bulk = await deployer.deploy(art)
    c = deployer.w3.eth.contract(address=bulk, abi=art.abi)
    debts = [1_150 * 10**6 if i % (N // WEAK) == 7 else 500 * 10**6 for i in range(N)]
    opened: dict[str, int] = {}
    topic = deployer.w3.keccak(text="Opened(address,uint256)")
    for i in range(0, N, PER_TX):
        data = c.encode_abi("open", [world.aave.pool, world.tokens["WETH"].address, WETH_EACH,
                                     world.tokens["USDC"].address, debts[i:i + PER_TX]])
        receipt = await deployer._send({"to": bulk, "data": data, "gas": 29_000_000}, "BulkBorrowers.open")
        for lg in receipt["logs"]:
            if lg["topics"][0] == topic:
                opened[deployer.w3.to_checksum_address(lg["topics"][1][-20:])] = int.from_bytes(lg["data"][:32], "big")
    assert len(opened) == N
    return opened


async def test_five_thousand_accounts_mirrored_and_liquidated_within_the_limit(deployer, world, proxy, tmp_path):
    borrowers = await open_borrowers(deployer, world)
    weak = {u for u, d in borrowers.items() if d > 500 * 10**6}
    text = config_text(world).replace(f'rpc_url = "{world.url}"',
                                      f'rpc_url = "{proxy.url}"\nmax_request_bytes = {LIMIT}')
    path = tmp_path / "keeper.toml"
    path.write_text(text)
    keeper = Keeper(load_config(path), Signer(Account.from_key(KEEPER_KEY)))
    try:
        await keeper.start()
        adapter = keeper.by_name["aave_v3"]
        assert isinstance(adapter, AaveV3Adapter) and adapter.mirror is not None
        await keeper.step(await keeper.chain.block_number())
        assert borrowers.keys() <= adapter.mirror.users.keys()
        assert keeper.recorder.outcomes == []  # all healthy
        # The mirror's account data equals the Pool's for every borrower.
        block = await keeper.chain.block_number()
        fn = POOL.fn("getUserAccountData")
        users = sorted(borrowers)
        chain = await keeper.chain.multicall_strict([Call(adapter.pool, fn.encode(u), fn.decode) for u in users], block)
        terms = adapter.mirror.terms()
        for u, d in zip(users, chain):
            mine = adapter.mirror.account(u, terms)
            assert (mine.total_collateral_base, mine.total_debt_base, mine.health_factor) == (d[0], d[1], d[5])

        # An idle block: the Aave mirror sends one POST, reads no user.
        await deployer.rpc("evm_mine", [])
        reread = adapter.mirror.stats.reread
        await adapter.refresh(await keeper.chain.block_number())
        assert adapter.mirror.stats.reread == reread

        weth = world.tokens["WETH"]
        await set_price(deployer, weth, weth.price * 70 // 100)
        for _ in range(4):
            await keeper.step(await keeper.chain.block_number())
    finally:
        await keeper.close()
    liquidated = {o.account for o in keeper.recorder.outcomes if o.tx_hash}
    assert liquidated == weak
    assert proxy.posts and max(p.size for p in proxy.posts) <= LIMIT
    assert not any(p.refused for p in proxy.posts)
