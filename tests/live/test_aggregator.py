"""The price-shock aggregator's shipped bytecode is what its source compiles to, and it answers as
a Chainlink aggregator from the slots the rehearsal writes (through a proxy too)."""
from __future__ import annotations

import pytest
from keeper_devnet.solc import compile_contract

from keeper.chain.client import Chain
from keeper.chain.rpc import Rpc
from keeper.live import aggregator
from keeper.live.fork import Shock, apply_shocks, resolve
from keeper.oracles.chainlink import ChainlinkFeed

SOURCE = "keeper/live/ShockAggregator.sol"


@pytest.mark.anvil
async def test_runtime_matches_the_source():
    art = await compile_contract(SOURCE, "ShockAggregator", evm_version="paris")
    assert art.deployed_bytecode == aggregator.RUNTIME, (
        "keeper/live/aggregator.py RUNTIME is stale: paste this in\n" + art.deployed_bytecode)


async def test_a_shocked_feed_answers_the_shocked_price(deployer, real_world, snapshot):
    weth = real_world.tokens["WETH"]
    rpc = Rpc(deployer.w3.provider.endpoint_uri)
    chain = Chain(rpc)
    try:
        before = await ChainlinkFeed(weth.feed).read(chain)
        resolved = await resolve(chain, {weth.address: {weth.feed}}, [Shock.parse("weth=-25%")])
        (applied,) = await apply_shocks(chain, resolved, 1_700_000_000)
        after = await ChainlinkFeed(weth.feed).read(chain)
    finally:
        await rpc.close()
    assert applied.replaced == weth.feed  # a plain aggregator: no proxy above it
    assert (applied.before, applied.after) == (before.price_8, before.price_8 * 3 // 4)
    assert (after.price_8, after.updated_at, after.round_id) == (before.price_8 * 3 // 4, 1_700_000_000,
                                                                 before.round_id + 1)
    # The Aave oracle reads the same feed (latestAnswer): it moves too.
    price = await deployer.call(real_world.aave.oracle, [{"type": "function", "name": "getAssetPrice",
                                                          "stateMutability": "view",
                                                          "inputs": [{"name": "a", "type": "address"}],
                                                          "outputs": [{"name": "", "type": "uint256"}]}],
                                "getAssetPrice", weth.address)
    assert price == before.price_8 * 3 // 4
