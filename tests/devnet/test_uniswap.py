"""The real Uniswap V3 contracts from npm: pools created at the oracle price ratio, seeded through the
NonfungiblePositionManager, swaps through SwapRouter paying exactly what QuoterV2 quoted."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from keeper_devnet.deploy import Deployer, DeployError
from keeper_devnet.tokens import Token, balance_of, deploy_default_tokens, mint
from keeper_devnet.uniswap import (
    UniswapDeployment,
    UniswapPool,
    create_pool_at_price,
    deploy_uniswap_v3,
    pool_price,
    quote_exact_input_single,
    slot0_sqrt_price,
    swap_exact_input_single,
)


@dataclass
class World:
    d: Deployer
    t: dict[str, Token]
    uni: UniswapDeployment
    pools: dict[str, UniswapPool]
    trader: str


@pytest.fixture(scope="module")
async def world(deployer) -> World:
    d = deployer
    tokens = await deploy_default_tokens(d)
    uni = await deploy_uniswap_v3(d)
    pools = {
        "WETH/USDC": await create_pool_at_price(d, uni, tokens["WETH"], tokens["USDC"], 3000),
        "WBTC/USDC": await create_pool_at_price(d, uni, tokens["WBTC"], tokens["USDC"], 500),
    }
    return World(d, tokens, uni, pools, (await d.w3.eth.accounts)[39])


@pytest.fixture
async def w(world, snapshot):
    yield world


def oracle_ratio(pool: UniswapPool) -> float:
    return pool.token0.price / pool.token1.price


async def test_pools_start_at_the_oracle_price(w):
    for pool in w.pools.values():
        price = pool_price(await slot0_sqrt_price(w.d, pool), pool.token0, pool.token1)
        assert abs(price / oracle_ratio(pool) - 1) < 1e-6
        assert pool.liquidity > 0
        # The seeding position holds about $10M of each side.
        for t in (pool.token0, pool.token1):
            held = await balance_of(w.d, t, pool.address)
            assert 0.99e7 < held * t.price / 10**t.decimals / 1e8 <= 1e7


@pytest.mark.parametrize("sym_in, sym_out, pool_key, fee, amount", [
    ("WETH", "USDC", "WETH/USDC", 3000, 10 * 10**18),  # a $30k liquidation's collateral
    ("USDC", "WBTC", "WBTC/USDC", 500, 30_000 * 10**6),
])
async def test_swap_pays_exactly_the_quote(w, sym_in, sym_out, pool_key, fee, amount):
    t_in, t_out, pool = w.t[sym_in], w.t[sym_out], w.pools[pool_key]
    await mint(w.d, t_in, w.trader, amount)
    quote = await quote_exact_input_single(w.d, w.uni, t_in, t_out, amount, fee)
    assert quote.amount_out > 0
    before = [await balance_of(w.d, t, who) for t in (t_in, t_out) for who in (w.trader, pool.address)]

    out = await swap_exact_input_single(w.d, w.uni, w.trader, t_in, t_out, amount, fee,
                                        amount_out_min=quote.amount_out)

    after = [await balance_of(w.d, t, who) for t in (t_in, t_out) for who in (w.trader, pool.address)]
    assert out == quote.amount_out
    assert [a - b for a, b in zip(after, before)] == [-amount, amount, out, -out]
    assert await slot0_sqrt_price(w.d, pool) == quote.sqrt_price_x96_after
    # Deep enough for realistic liquidation sizes: the price moved by less than 1%.
    price = pool_price(quote.sqrt_price_x96_after, pool.token0, pool.token1)
    assert abs(price / oracle_ratio(pool) - 1) < 0.01
    # And the received value is the oracle value less the fee and under 1% of impact.
    value_in = amount * t_in.price / 10**t_in.decimals
    value_out = out * t_out.price / 10**t_out.decimals
    assert 1 - fee / 1e6 - 0.01 < value_out / value_in < 1 - fee / 1e6


async def test_swap_below_minimum_reverts(w):
    weth, usdc = w.t["WETH"], w.t["USDC"]
    await mint(w.d, weth, w.trader, 10**18)
    quote = await quote_exact_input_single(w.d, w.uni, weth, usdc, 10**18)
    with pytest.raises(DeployError, match="Too little received"):
        await swap_exact_input_single(w.d, w.uni, w.trader, weth, usdc, 10**18,
                                      amount_out_min=quote.amount_out + 1)
    assert await balance_of(w.d, weth, w.trader) == 10**18
