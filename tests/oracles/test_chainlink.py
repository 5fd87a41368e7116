"""Chainlink feeds as the keeper reads them (Chainlink's own MockV3Aggregator, @chainlink/contracts,
on Anvil): answers of any number of decimals are scaled to 8 (truncated, as integer maths), and a
non-positive answer is refused with an error naming the feed and the answer, so that the keeper
sends nothing it would have to value with it."""
from __future__ import annotations

import copy

import pytest
from eth_account import Account
from keeper_devnet.tokens import feed_artifact
from keeper_devnet.world import KEEPER_ADDRESS, KEEPER_KEY, config_text, open_position

from keeper.chain.client import Chain
from keeper.chain.rpc import Rpc
from keeper.chain.signer import Signer
from keeper.config import load_config
from keeper.engine.daemon import Keeper
from keeper.oracles.chainlink import ChainlinkFeed
from tests.helpers.keeper import run_and_close
from tests.protocols.aave_v3.helpers import drop_weth

# $3,000.123456789012345678 at each precision a feed may have (ETH-quoted feeds have 18, some 6 or 0).
ANSWERS = {18: 3_000_123456789012345678, 10: 3_000_1234567890, 8: 3_000_12345678, 6: 3_000_123456, 0: 3_000}
SCALED = {18: 3_000_12345678, 10: 3_000_12345678, 8: 3_000_12345678, 6: 3_000_12345600, 0: 3_000_00000000}


async def deploy_feed(d, decimals: int, answer: int) -> str:
    return await d.deploy(await feed_artifact(), decimals, answer)


async def update(d, feed: str, answer: int) -> None:
    await d.transact(feed, (await feed_artifact()).abi, "updateAnswer", answer)


@pytest.fixture
async def chain(real_world, anvil, snapshot):
    rpc = Rpc(anvil.url)
    yield Chain(rpc)
    await rpc.close()


@pytest.mark.parametrize("decimals", sorted(ANSWERS))
async def test_answers_are_scaled_to_8_decimals(deployer, chain, decimals):
    feed = ChainlinkFeed(await deploy_feed(deployer, decimals, ANSWERS[decimals]))
    got = await feed.read(chain)
    assert got.price_8 == SCALED[decimals] and feed.decimals == decimals
    assert got.round_id == 1 and got.updated_at == (await deployer.w3.eth.get_block("latest"))["timestamp"]
    await update(deployer, feed.address, ANSWERS[decimals] * 2)  # decimals read once, answers each time
    assert (await feed.read(chain)).price_8 == SCALED[decimals] * 2 + (decimals > 8)
    assert (await feed.read(chain)).round_id == 2


@pytest.mark.parametrize("answer", [0, -1, -3_000 * 10**8])
async def test_non_positive_answer_is_refused_naming_the_feed(deployer, chain, answer):
    addr = await deploy_feed(deployer, 8, 3_000 * 10**8)
    feed = ChainlinkFeed(addr)
    assert (await feed.read(chain)).price_8 == 3_000 * 10**8
    await update(deployer, addr, answer)
    with pytest.raises(ValueError, match=f"Chainlink feed {addr} answered a non-positive price {answer}"):
        await feed.read(chain)


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


async def keeper_with_native_feed(world, tmp_path, feed: str) -> Keeper:
    """A started keeper whose native_usd_feed (ETH in USD, to value gas) is ``feed``."""
    path = tmp_path / "keeper.toml"
    path.write_text(config_text(world).replace(world.tokens["WETH"].feed, feed))
    keeper = Keeper(load_config(path), Signer(Account.from_key(KEEPER_KEY)))
    await keeper.start()
    return keeper


async def test_gas_is_valued_with_an_18_decimal_native_feed(deployer, world, tmp_path):
    [user] = world.take_accounts(1)
    await open_position(deployer, world, user, {"WETH": 10}, {"USDC": 19_000})
    await drop_weth(deployer, world)
    eth_usd = world.tokens["WETH"].price  # 2,100 USD, 8 decimals
    feed = await deploy_feed(deployer, 18, eth_usd * 10**10)
    keeper = await run_and_close(await keeper_with_native_feed(world, tmp_path, feed))
    [liq] = keeper.recorder.report()["liquidations"]
    d = liq["details"]
    # gas x price (wei) x ETH price: the same USD figure as from the 8-decimal feed.
    assert d["gas_cost_usd"] * 10**8 == pytest.approx(d["gas_simulated"] * d["gas_price_wei"] * eth_usd / 10**18, abs=1)
    assert 0 < d["gas_cost_usd"] < 5
    receipt = await deployer.w3.eth.get_transaction_receipt(liq["tx_hash"])
    paid = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert liq["realised_profit_usd"] == pytest.approx(d["gross_profit_usd"] - paid * eth_usd / 10**26, abs=1e-6)


async def test_a_non_positive_native_price_stops_the_step_before_anything_is_sent(deployer, world, tmp_path):
    [user] = world.take_accounts(1)
    await open_position(deployer, world, user, {"WETH": 10}, {"USDC": 19_000})
    await drop_weth(deployer, world)
    feed = await deploy_feed(deployer, 8, world.tokens["WETH"].price)
    keeper = await keeper_with_native_feed(world, tmp_path, feed)
    nonce = await deployer.w3.eth.get_transaction_count(KEEPER_ADDRESS)
    try:
        await update(deployer, feed, 0)
        with pytest.raises(ValueError, match=f"Chainlink feed {feed} answered a non-positive price 0"):
            await keeper.step(await keeper.chain.block_number())
    finally:
        await keeper.close()
    assert keeper.recorder.outcomes == []
    assert await deployer.w3.eth.get_transaction_count(KEEPER_ADDRESS) == nonce  # nothing sent
