"""An Aave liquidation on an OP-stack chain (chain.l2 = "op_stack"): the real GasPriceOracle and
L1Block code at their predeploys on Anvil. The plan's cost includes the L1 data fee of every
transaction it sends, and a plan whose L1 fee eats its profit is not sent."""
from __future__ import annotations

import copy

import pytest
import rlp
from keeper_devnet.l2 import (
    GAS_PRICE_ORACLE,
    NODE_INTERFACE,
    L1Values,
    install_node_interface,
    install_op_stack,
    set_l1_values,
)
from keeper_devnet.protocols.aave_v3.common import account_data
from keeper_devnet.tokens import set_price
from keeper_devnet.world import open_position

from keeper.protocols.base import SkipCode
from tests.helpers.keeper import make_keeper, startup_error, step

OP_STACK = 'l2 = "op_stack"\n'
# Base mainnet-like L1 values (Ecotone scalars, Fjord active): an L1 fee of a fraction of a cent.
BASE_LIKE = L1Values(base_fee=20 * 10**9, blob_base_fee=10**9, base_fee_scalar=2_269, blob_base_fee_scalar=1_055_762)
# An L1 so expensive that publishing a liquidation costs more ETH than it earns.
DEAR = L1Values(base_fee=10**15, blob_base_fee=10**9, base_fee_scalar=10_000_000, blob_base_fee_scalar=0)
GPO_ABI = [{"type": "function", "name": "getL1Fee", "stateMutability": "view",
            "inputs": [{"name": "data", "type": "bytes"}], "outputs": [{"name": "", "type": "uint256"}]}]


@pytest.fixture
async def world(real_world, snapshot):
    w = copy.deepcopy(real_world)
    yield w


async def unhealthy_position(deployer, world) -> str:
    """WETH collateral / USDC debt at 80% of the LTV, then WETH down 30%: HF ~0.90."""
    (user,) = world.take_accounts(1)
    await open_position(deployer, world, user, {"WETH": 10}, {"USDC": 19_200})
    weth = world.tokens["WETH"]
    await set_price(deployer, weth, weth.price * 7 // 10)
    assert (await account_data(deployer, world.aave, user))[5] < 10**18
    return user


async def l1_fee_of(deployer, tx_hash: str, block: int) -> int:
    """GasPriceOracle.getL1Fee over the mined transaction's unsigned encoding (its signed bytes
    without v, r, s), asked at ``block``."""
    raw = bytes.fromhex((await deployer.rpc("eth_getRawTransactionByHash", [tx_hash]))[2:])
    assert raw[0] == 2
    unsigned = b"\x02" + rlp.encode(rlp.decode(raw[1:])[:-3])
    return await deployer.at(GAS_PRICE_ORACLE, GPO_ABI).functions.getL1Fee(unsigned).call(block_identifier=block)


async def test_predicted_cost_includes_the_l1_fee_of_every_transaction_sent(deployer, world, tmp_path):
    await install_op_stack(deployer, BASE_LIKE)
    user = await unhealthy_position(deployer, world)
    keeper = await make_keeper(world, tmp_path, chain=OP_STACK)
    seen = []  # the pending record (its hashes: approvals too) is replaced by the confirmed one
    keeper.recorder.listeners.append(seen.append)
    try:
        await step(keeper)
    finally:
        await keeper.close()
    pending = [o for o in seen if o.status.value == "pending"]
    report = keeper.recorder.report()
    assert report["failed"] == [] and [o["account"] for o in report["liquidations"]] == [user]
    assert len(pending) == 1
    d = pending[0].details
    hashes = d["tx_hashes"]  # the approval of USDC to the Pool and the liquidation
    assert len(hashes) == d["approvals"] + 1
    planned_at = (await deployer.w3.eth.get_transaction(hashes[0]))["blockNumber"] - 1
    fees = [await l1_fee_of(deployer, h, planned_at) for h in hashes]
    assert all(f > 0 for f in fees)
    assert d["l1_fee_wei"] == sum(fees)  # exactly what the predeploy charges for what was signed
    native = (await deployer.call(world.tokens["WETH"].feed, FEED_ABI, "latestRoundData"))[1]
    l1_usd = -(-sum(fees) * native // 10**18)
    assert round(d["l1_fee_usd"] * 1e8) == l1_usd
    # The predicted profit is the gross less the L2 gas and the L1 fee.
    assert pending[0].predicted_profit == round(d["gross_profit_usd"] * 1e8) - round(d["gas_cost_usd"] * 1e8) - l1_usd


async def test_a_plan_whose_l1_fee_eats_its_profit_is_skipped_and_sent_once_the_l1_is_cheap(
        deployer, world, tmp_path):
    await install_op_stack(deployer, DEAR)
    user = await unhealthy_position(deployer, world)
    nonce = await deployer.w3.eth.get_transaction_count(world.keeper_address)
    keeper = await make_keeper(world, tmp_path, chain=OP_STACK)
    try:
        await step(keeper)
        (skip,) = keeper.recorder.outcomes
        assert skip.status.value == "skipped" and skip.reason_code is SkipCode.BELOW_MIN_PROFIT
        assert "L1 fee" in skip.reason and skip.predicted_profit < 0
        assert await deployer.w3.eth.get_transaction_count(world.keeper_address) == nonce  # nothing sent
        assert (await account_data(deployer, world.aave, user))[5] < 10**18
        # The same plan when L1 data is cheap again: sent, and the position is liquidated.
        await set_l1_values(deployer, BASE_LIKE)
        await step(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert [o["account"] for o in report["liquidations"]] == [user]
    assert await deployer.w3.eth.get_transaction_count(world.keeper_address) > nonce
    assert report["liquidations"][0]["details"]["l1_fee_wei"] > 0


NI_ABI = [{"type": "function", "name": "gasEstimateL1Component", "stateMutability": "payable",
           "inputs": [{"name": "to", "type": "address"}, {"name": "contractCreation", "type": "bool"},
                      {"name": "data", "type": "bytes"}],
           "outputs": [{"name": "gasEstimateForL1", "type": "uint64"}, {"name": "baseFee", "type": "uint256"},
                       {"name": "l1BaseFeeEstimate", "type": "uint256"}]}]


async def test_on_arbitrum_the_l1_gas_is_counted_and_added_to_each_gas_limit(deployer, world, tmp_path):
    """Arbitrum charges the L1 part as L2 gas (a NodeInterface stand-in here: the real one is virtual)."""
    await install_node_interface(deployer, l1_price_per_unit=10**8, l2_base_fee=10**7)
    await unhealthy_position(deployer, world)
    # Arbitrum's L2 base fee floor (0.01 gwei): the L1 part is then some 10^4 to 10^5 gas.
    await deployer.rpc("anvil_setNextBlockBaseFeePerGas", [hex(10**7)])
    await deployer.rpc("evm_mine", [])
    keeper = await make_keeper(world, tmp_path, chain='l2 = "arbitrum"\n')
    seen = []
    keeper.recorder.listeners.append(seen.append)
    try:
        await step(keeper)
    finally:
        await keeper.close()
    (pending,) = [o for o in seen if o.status.value == "pending"]
    d = pending.details
    assert len(keeper.recorder.report()["liquidations"]) == 1
    l1 = []
    planned_at = (await deployer.w3.eth.get_transaction(d["tx_hashes"][0]))["blockNumber"] - 1
    for h in d["tx_hashes"]:
        tx = await deployer.w3.eth.get_transaction(h)
        rc = await deployer.w3.eth.get_transaction_receipt(h)
        # Asked on the block the plan was made on (the L2 base fee moves from block to block).
        gas_l1, base, _ = await deployer.at(NODE_INTERFACE, NI_ABI).functions.gasEstimateL1Component(
            tx["to"], False, bytes(tx["input"])).call(block_identifier=planned_at)
        assert gas_l1 > 0 and tx["gas"] - gas_l1 >= rc["gasUsed"]  # the limit covers the L2 gas besides
        l1.append((gas_l1, base))
    assert d["l1_gas"] == sum(g for g, _ in l1) and d["l1_fee_wei"] == sum(g * b for g, b in l1)
    liquidation = await deployer.w3.eth.get_transaction(d["tx_hashes"][-1])
    margin = keeper.limits.gas_margin_pct
    assert liquidation["gas"] == d["gas_simulated"] * margin // 100 + 30_000 + l1[-1][0]


async def test_a_chain_without_the_predeploy_is_refused_at_start(world, tmp_path):
    e = await startup_error(world, tmp_path, "chain.l2", chain=OP_STACK)
    assert "'op_stack'" in str(e) and "GasPriceOracle at 0x420000000000000000000000000000000000000F" in str(e)


FEED_ABI = [{"type": "function", "name": "latestRoundData", "stateMutability": "view", "inputs": [],
             "outputs": [{"name": "roundId", "type": "uint80"}, {"name": "answer", "type": "int256"},
                         {"name": "startedAt", "type": "uint256"}, {"name": "updatedAt", "type": "uint256"},
                         {"name": "answeredInAt", "type": "uint80"}]}]
