"""EIP-1559 fees from eth_feeHistory on a node whose base fee is not Anvil's default (raised to 40
gwei, then falling block by block as EIP-1559 makes it) and whose recent blocks paid 5 gwei tips:
the keeper offers the recent median tip capped at max_priority_fee_gwei and signs maxFeePerGas =
2 x the next block's base fee + tip; checked against the blocks the node then mines."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.world import KEEPER_ADDRESS, open_position

from keeper.chain.client import Chain
from keeper.chain.fees import current_fees
from keeper.chain.rpc import Rpc
from tests.helpers.keeper import make_keeper, run_and_close
from tests.protocols.aave_v3.helpers import drop_weth

GWEI = 10**9
TIP = 5 * GWEI  # what the recent blocks' transactions paid


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


async def busy_blocks(d, world, n: int = 5) -> None:
    """A base fee of 40 gwei, then ``n`` blocks each with one transfer paying a 5 gwei tip."""
    await d.rpc("anvil_setNextBlockBaseFeePerGas", [hex(40 * GWEI)])
    payer = world.take_accounts(1)[0]
    for _ in range(n):
        h = await d.w3.eth.send_transaction({"from": payer, "to": payer, "value": 1, "gas": 21_000,
                                             "maxFeePerGas": 200 * GWEI, "maxPriorityFeePerGas": TIP})
        await d.w3.eth.wait_for_transaction_receipt(h, poll_latency=0.01)


async def next_base_fee(d) -> int:
    """Mine an empty block: the base fee it has is what the node charged next."""
    await d.rpc("evm_mine", [])
    return (await d.w3.eth.get_block("latest"))["baseFeePerGas"]


async def test_fees_follow_fee_history(deployer, world, anvil):
    await busy_blocks(deployer, world)
    rpc = Rpc(anvil.url)
    try:
        chain = Chain(rpc)
        capped = await current_fees(chain, max_priority_fee=2 * GWEI)
        median = await current_fees(chain, max_priority_fee=10 * GWEI)
    finally:
        await rpc.close()
    base = await next_base_fee(deployer)
    assert 10 * GWEI < base < 40 * GWEI and base != 1 * GWEI  # not Anvil's default, not the set value
    assert (capped.base_fee, capped.priority_fee, capped.max_fee) == (base, 2 * GWEI, 2 * base + 2 * GWEI)
    assert (median.base_fee, median.priority_fee, median.max_fee) == (base, TIP, 2 * base + TIP)
    assert capped.expected_price == base + 2 * GWEI


async def test_liquidation_is_signed_with_those_fees(deployer, world, tmp_path):
    [user] = world.take_accounts(1)
    await open_position(deployer, world, user, {"WETH": 10}, {"USDC": 19_000})
    await drop_weth(deployer, world)
    await busy_blocks(deployer, world)
    first = await deployer.w3.eth.block_number + 1
    keeper = await run_and_close(await make_keeper(world, tmp_path, max_gas_price_gwei="100"))
    [liq] = keeper.recorder.report()["liquidations"]
    head = await deployer.w3.eth.block_number
    blocks = [await deployer.w3.eth.get_block(n, full_transactions=True) for n in range(first, head + 1)]
    sent = [(b, tx) for b in blocks for tx in b["transactions"] if tx["from"] == KEEPER_ADDRESS]
    assert [tx["hash"].to_0x_hex() for _, tx in sent][-1] == liq["tx_hash"] and len(sent) == 2  # approval + liquidation
    (b0, _), _ = sent
    base = b0["baseFeePerGas"]  # the block the keeper's first transaction went into: the "next" block
    assert base > 10 * GWEI
    for b, tx in sent:  # max_priority_fee_gwei = 2 in the config: the 5 gwei median is capped
        assert tx["maxPriorityFeePerGas"] == 2 * GWEI and tx["maxFeePerGas"] == 2 * base + 2 * GWEI
        receipt = await deployer.w3.eth.get_transaction_receipt(tx["hash"])
        assert receipt["effectiveGasPrice"] == b["baseFeePerGas"] + 2 * GWEI
    assert liq["details"]["gas_price_wei"] == base + 2 * GWEI  # what profit was computed with
