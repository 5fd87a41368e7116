"""The shared local world (keeper/devnet/world.py): what the tests, `keeper devnet` and `keeper demo`
all stand on."""
from __future__ import annotations

import pytest

from eth_utils import keccak

from keeper.chain.multicall import MULTICALL3
from keeper.devnet.multicall3 import CANONICAL_CODEHASH
from keeper.devnet.uniswap import WORLD_PAIRS, pool_price, slot0_sqrt_price


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
