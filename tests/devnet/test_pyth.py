"""Pyth's own MockPyth (@pythnetwork/pyth-sdk-solidity 4.3.1, prebuilt creation code from the package):
paid updates, reads with an age bound, and its custom errors."""
from __future__ import annotations

import pytest
from eth_utils import keccak
from keeper_devnet.deploy import DeployError
from keeper_devnet.pyth import (
    INSUFFICIENT_FEE,
    STALE_PRICE,
    deploy_mock_pyth,
    get_price_no_older_than,
    mock_pyth_artifact,
    price_update_data,
    update_price_feeds,
)

FEED = keccak(b"Crypto.ETH/USD")
FEE = 7


@pytest.fixture(scope="module")
async def pyth(deployer) -> str:
    return await deploy_mock_pyth(deployer, valid_time_period=60, fee_wei=FEE)


async def test_update_then_read(deployer, pyth, snapshot):
    d = deployer
    now = (await d.w3.eth.get_block("latest"))["timestamp"]
    data = await price_update_data(d, pyth, FEED, 3_012_34567890, 1_500_000, -8, now)
    assert len(data) == 320

    with pytest.raises(DeployError, match=INSUFFICIENT_FEE):
        await update_price_feeds(d, pyth, [data], value=FEE - 1)
    balance = await d.w3.eth.get_balance(pyth)
    receipt = await update_price_feeds(d, pyth, [data])
    assert await d.w3.eth.get_balance(pyth) == balance + FEE

    event = d.at(pyth, mock_pyth_artifact().abi).events.PriceFeedUpdate()
    [log] = [event.process_log(lg)["args"] for lg in receipt["logs"]]
    assert (bytes(log["id"]), log["publishTime"], log["price"], log["conf"]) == (FEED, now, 3_012_34567890, 1_500_000)
    assert await get_price_no_older_than(d, pyth, FEED, 60) == (3_012_34567890, 1_500_000, -8, now)

    # Not newer than the stored publishTime: accepted (fee paid) but ignored.
    older = await price_update_data(d, pyth, FEED, 1, 1, -8, now)
    await update_price_feeds(d, pyth, [older])
    assert (await get_price_no_older_than(d, pyth, FEED, 60))[0] == 3_012_34567890

    await d.rpc("evm_increaseTime", [120])
    await d.rpc("evm_mine", [])
    with pytest.raises(Exception, match=STALE_PRICE):
        await get_price_no_older_than(d, pyth, FEED, 60)
