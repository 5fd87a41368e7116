"""The shared local world (keeper/devnet/world.py): what the tests, `keeper devnet` and `keeper demo`
all stand on."""
from __future__ import annotations

import pytest
from eth_utils import keccak
from keeper_devnet.multicall3 import CANONICAL_CODEHASH
from keeper_devnet.uniswap import WORLD_PAIRS, pool_price, slot0_sqrt_price

from keeper.chain.multicall import MULTICALL3


async def test_world_has_multicall3_aave_and_uniswap_pools_at_the_oracle_price(deployer, real_world):
    w = real_world
    code = await deployer.w3.eth.get_code(MULTICALL3)
    assert "0x" + keccak(bytes(code)).hex() == CANONICAL_CODEHASH
    assert w.contracts["aave_v3"] == "@aave/core-v3@1.19.3"
    assert set(w.extra["uniswap_pools"]) == {f"{a}/{b}" for a, b in WORLD_PAIRS}
    for pool in w.extra["uniswap_pools"].values():
        t0, t1 = pool.token0, pool.token1
        oracle = (t0.price / 1e8) / (t1.price / 1e8)  # whole token1 per whole token0
        assert pool_price(await slot0_sqrt_price(deployer, pool), t0, t1) == pytest.approx(oracle, rel=1e-9)
        assert pool.liquidity > 0


async def test_world_aave_has_flash_loans_with_a_premium(deployer, real_world):
    abi = [{"type": "function", "name": "FLASHLOAN_PREMIUM_TOTAL", "stateMutability": "view", "inputs": [],
            "outputs": [{"name": "", "type": "uint128"}]},
           {"type": "function", "name": "getConfiguration", "stateMutability": "view",
            "inputs": [{"name": "asset", "type": "address"}],
            "outputs": [{"name": "", "type": "tuple", "components": [{"name": "data", "type": "uint256"}]}]}]
    pool = real_world.aave.pool
    assert await deployer.call(pool, abi, "FLASHLOAN_PREMIUM_TOTAL") == 5  # basis points
    for t in real_world.tokens.values():
        (data,) = await deployer.call(pool, abi, "getConfiguration", t.address)
        assert data >> 63 & 1  # ReserveConfiguration bit 63: flash loans enabled
