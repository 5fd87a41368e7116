"""L1 fees of rollup transactions: the real OP-stack GasPriceOracle / L1Block code on Anvil (set at
their predeploy addresses), and a NodeInterface stand-in for Arbitrum (a virtual contract there)."""
from __future__ import annotations

import os

import pytest
import rlp
from eth_account import Account

from keeper.chain.client import Chain
from keeper.chain.l1fee import (
    NO_FEE,
    UnsignedTx,
    l1_fee,
    l1_fee_wei,
    op_stack_l1_fee_upper_bound,
    plan_l1_fee,
    receipt_l1_fee,
)
from keeper.chain.rpc import Rpc

KEY = "0x" + "42" * 32
# A liquidationCall-shaped calldata: selector, three addresses, an amount, a bool (zero-heavy words).
CALLDATA = bytes.fromhex("00a718a9") + b"".join(
    bytes(12) + bytes.fromhex(a) for a in ("c02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
                                           "a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
                                           "70997970c51812dc3a010c7d01b50e0d17dc79c8")) + (
    (123_456_789_000).to_bytes(32, "big") + bytes(32))


def tx_of(data: bytes = CALLDATA) -> UnsignedTx:
    return UnsignedTx(chain_id=8453, to="0xA238Dd80C259a72e81d7e4664a9801593F98d1c5", data=data, nonce=17,
                      gas=612_345, max_fee=2_000_000, priority_fee=1_000)


def signed(tx: UnsignedTx) -> bytes:
    return bytes(Account.sign_transaction({
        "type": 2, "chainId": tx.chain_id, "nonce": tx.nonce, "to": tx.to, "data": tx.data, "value": tx.value,
        "gas": tx.gas, "maxFeePerGas": tx.max_fee, "maxPriorityFeePerGas": tx.priority_fee,
    }, KEY).raw_transaction)


def unsigned_from_signed(raw: bytes) -> bytes:
    """eth_account's signed EIP-1559 encoding with its three signature fields dropped."""
    assert raw[0] == 2
    return b"\x02" + rlp.encode(rlp.decode(raw[1:])[:-3])


@pytest.fixture
async def chain(anvil, snapshot):
    rpc = Rpc(anvil.url)
    yield Chain(rpc)
    await rpc.close()


async def test_unsigned_encoding_matches_eth_account():
    tx = tx_of()
    assert tx.rlp() == unsigned_from_signed(signed(tx))
    assert UnsignedTx(1, None, b"\x60\x00").rlp()[0] == 2


async def test_op_stack_ecotone_fee_is_the_calldata_gas_of_the_unsigned_transaction(deployer, chain):
    from keeper_devnet.l2 import L1Values, install_op_stack
    v = L1Values(base_fee=30 * 10**9, blob_base_fee=5 * 10**9, base_fee_scalar=1_368, blob_base_fee_scalar=810_949)
    await install_op_stack(deployer, v, fjord=False)
    tx = tx_of()
    fee = await l1_fee(chain, "op_stack", tx)
    # Ecotone (GasPriceOracle._getL1FeeEcotone): (zero bytes x 4 + other bytes x 16 + 68 x 16)
    # x (16 x baseFeeScalar x l1BaseFee + blobBaseFeeScalar x blobBaseFee) / (16 x 10^6).
    body = unsigned_from_signed(signed(tx))
    gas = sum(4 if b == 0 else 16 for b in body) + 68 * 16
    expected = gas * (16 * v.base_fee_scalar * v.base_fee + v.blob_base_fee_scalar * v.blob_base_fee) // (16 * 10**6)
    assert fee.wei == expected > 0 and fee.l1_gas == 0
    assert await l1_fee_wei(chain, "op_stack", tx) == expected


async def test_op_stack_fjord_fee_follows_l1_prices_and_size(deployer, chain):
    from keeper_devnet.l2 import L1Values, install_op_stack, set_l1_values
    v = L1Values(base_fee=20 * 10**9, blob_base_fee=10**9, base_fee_scalar=2_269, blob_base_fee_scalar=1_055_762)
    await install_op_stack(deployer, v)
    tx = tx_of()
    fee = await l1_fee_wei(chain, "op_stack", tx)
    bound = await op_stack_l1_fee_upper_bound(chain, len(tx.rlp()))
    assert 0 < fee <= bound
    # A signed encoding pays for its signature once more (the predeploy adds 68 bytes for it).
    assert await l1_fee_wei(chain, "op_stack", signed(tx)) > fee
    # Incompressible calldata costs more than the zero-heavy liquidation calldata of the same length.
    assert await l1_fee_wei(chain, "op_stack", tx_of(os.urandom(len(CALLDATA)))) > fee
    # Twice the L1 base fee and blob base fee: twice the fee (floor division: within 1 wei).
    await set_l1_values(deployer, L1Values(base_fee=2 * v.base_fee, blob_base_fee=2 * v.blob_base_fee,
                                           base_fee_scalar=v.base_fee_scalar,
                                           blob_base_fee_scalar=v.blob_base_fee_scalar))
    assert abs(await l1_fee_wei(chain, "op_stack", tx) - 2 * fee) <= 1
    # A plan's fee is the sum of its transactions' fees.
    two = await plan_l1_fee(chain, "op_stack", [tx, tx_of(CALLDATA[:4])])
    assert two.wei == (await l1_fee_wei(chain, "op_stack", tx)) + (await l1_fee_wei(chain, "op_stack", tx_of(CALLDATA[:4])))


async def test_arbitrum_l1_component_is_priced_at_the_l2_base_fee(deployer, chain):
    from keeper_devnet.l2 import install_node_interface
    await install_node_interface(deployer, l1_price_per_unit=25 * 10**9, l2_base_fee=10**7)
    tx = tx_of()
    fee = await l1_fee(chain, "arbitrum", tx)
    base = fee.wei // fee.l1_gas  # the L2 base fee the node priced the L1 gas at
    assert fee.wei == fee.l1_gas * base and base > 0
    # The stand-in's own model: 16 units per calldata byte plus a fixed 140 bytes, at the L1 price,
    # rounded up to whole L2 gas.
    poster_cost = 25 * 10**9 * 16 * (len(CALLDATA) + 140)
    assert (fee.l1_gas - 1) * base < poster_cost <= fee.l1_gas * base
    # The same transaction given as signed bytes: its to and data are read back from the encoding.
    assert await l1_fee(chain, "arbitrum", signed(tx)) == fee
    assert (await l1_fee(chain, "arbitrum", tx_of(CALLDATA * 2))).l1_gas > fee.l1_gas


async def test_no_l2_means_no_fee_and_no_request():
    class NoNode:
        async def eth_call(self, *a, **k):
            raise AssertionError("no request expected")
    assert await l1_fee(NoNode(), "none", tx_of()) == NO_FEE  # type: ignore[arg-type]
    assert await plan_l1_fee(NoNode(), "none", [tx_of()]) == NO_FEE  # type: ignore[arg-type]


def test_receipt_l1_fee():
    assert receipt_l1_fee({"l1Fee": "0x2a", "gasUsed": "0x5208"}) == 42
    assert receipt_l1_fee({"gasUsed": "0x5208"}) == 0
