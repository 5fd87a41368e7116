"""EIP-1559 fees from eth_feeHistory (next base fee, median tip capped by the config, maxFeePerGas =
2 x base + tip), and the sender over a scripted transport: signed type-2 transactions with
consecutive nonces, a resync after a refused send, receipts polled until they come."""
from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes

from keeper.chain.fees import GWEI, Fees, current_fees
from keeper.chain.sender import Sender, TxRequest
from keeper.chain.signer import Signer
from keeper.errors import RpcError
from tests.helpers.fake_rpc import Fault, fake_chain, fee_history

KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # Anvil's public dev key #1
TARGET = "0x1111111111111111111111111111111111111111"


async def test_fees_use_the_pending_base_fee_and_the_median_tip():
    chain, fake = fake_chain()
    fake.on("eth_feeHistory", fee_history([10 * GWEI, 11 * GWEI, 12 * GWEI, 13 * GWEI],
                                          [3 * GWEI, 1 * GWEI, 2 * GWEI]))
    fees = await current_fees(chain, max_priority_fee=5 * GWEI, blocks=3, percentile=40.0)
    assert fees == Fees(base_fee=13 * GWEI, priority_fee=2 * GWEI, max_fee=2 * 13 * GWEI + 2 * GWEI)
    assert fees.expected_price == 15 * GWEI
    assert fake.calls_of("eth_feeHistory") == [["0x3", "latest", [40.0]]]


async def test_tip_is_capped_by_max_priority_fee():
    chain, fake = fake_chain()
    fake.on("eth_feeHistory", fee_history([GWEI, GWEI], [7 * GWEI]))
    fees = await current_fees(chain, max_priority_fee=2 * GWEI)
    assert (fees.priority_fee, fees.max_fee) == (2 * GWEI, 2 * GWEI + 2 * GWEI)


async def test_empty_blocks_tip_one_wei_and_a_zero_cap_tips_nothing():
    chain, fake = fake_chain()
    fake.on("eth_feeHistory", fee_history([100, 100, 100], [None, 0]))
    fees = await current_fees(chain, max_priority_fee=GWEI)
    assert (fees.base_fee, fees.priority_fee, fees.max_fee) == (100, 1, 201)
    fees = await current_fees(chain, max_priority_fee=0)
    assert (fees.priority_fee, fees.max_fee) == (0, 200)


def test_expected_price_never_exceeds_max_fee():
    assert Fees(base_fee=10, priority_fee=5, max_fee=12).expected_price == 12
    assert Fees(base_fee=10, priority_fee=5, max_fee=25).expected_price == 15


def sender_on(fake_setup) -> tuple[Sender, object]:
    chain, fake = fake_chain()
    fake_setup(fake)
    return Sender(chain, Signer(Account.from_key(KEY)), 31337, poll_interval=0, receipt_timeout=0.5), fake


def sent(fake) -> list[dict]:
    """The transactions sent, decoded (each signed by the keeper's key)."""
    raws = [p[0] for p in fake.calls_of("eth_sendRawTransaction")]
    assert all(Account.recover_transaction(r) == Account.from_key(KEY).address for r in raws)
    return [TypedTransaction.from_bytes(HexBytes(r)).as_dict() for r in raws]


FEES = Fees(base_fee=GWEI, priority_fee=GWEI // 10, max_fee=2 * GWEI + GWEI // 10)


async def test_sends_signed_type2_transactions_with_consecutive_nonces():
    sender, fake = sender_on(lambda f: f.on("eth_getTransactionCount", "0x9").on("eth_sendRawTransaction", "0x00"))
    h1 = await sender.send(TxRequest(TARGET, b"\x01", gas=100_000), FEES)
    h2 = await sender.send(TxRequest(TARGET, b"\x02", value=3, gas=50_000), FEES)
    one, two = sent(fake)
    assert (one["nonce"], two["nonce"]) == (9, 10)
    assert one["chainId"] == 31337 and "0x" + bytes(one["to"]).hex() == TARGET and bytes(one["data"]) == b"\x01"
    assert (one["maxFeePerGas"], one["maxPriorityFeePerGas"], one["gas"]) == (FEES.max_fee, FEES.priority_fee, 100_000)
    assert two["value"] == 3 and h1 != h2
    assert len(fake.calls_of("eth_getTransactionCount")) == 1  # the nonce is read once, then counted


async def test_already_known_counts_as_sent_other_refusals_resync_the_nonce():
    sender, fake = sender_on(lambda f: f.on("eth_getTransactionCount", "0x4", "0x4")
                             .on("eth_sendRawTransaction", Fault(-32000, "already known"),
                                 Fault(-32000, "insufficient funds for gas * price + value"), "0x00"))
    await sender.send(TxRequest(TARGET, b"", gas=21_000), FEES)
    with pytest.raises(RpcError, match="insufficient funds"):
        await sender.send(TxRequest(TARGET, b"", gas=21_000), FEES)
    await sender.send(TxRequest(TARGET, b"", gas=21_000), FEES)
    assert [t["nonce"] for t in sent(fake)] == [4, 5, 4]  # resynced from the node after the refusal
    assert len(fake.calls_of("eth_getTransactionCount")) == 2


async def test_send_needs_a_gas_limit():
    sender, fake = sender_on(lambda f: None)
    with pytest.raises(ValueError, match="gas must be set"):
        await sender.send(TxRequest(TARGET, b""), FEES)
    assert fake.calls == []


async def test_wait_polls_until_the_receipt_comes():
    receipt = {"status": "0x1", "blockNumber": "0x20", "gasUsed": "0x5208", "effectiveGasPrice": hex(GWEI),
               "logs": [{"address": TARGET, "topics": ["0x" + "aa" * 32], "data": "0x", "blockNumber": "0x20",
                         "logIndex": "0x0", "transactionHash": "0x" + "bb" * 32}]}
    sender, fake = sender_on(lambda f: f.on("eth_getTransactionReceipt", None, None, receipt))
    r = await sender.wait("0x" + "bb" * 32)
    assert (r.status, r.block_number, r.gas_used, r.fee_paid) == (1, 32, 21_000, 21_000 * GWEI)
    assert r.logs[0].address.lower() == TARGET and len(fake.calls_of("eth_getTransactionReceipt")) == 3


async def test_wait_gives_up_after_the_timeout():
    sender, _ = sender_on(lambda f: f.on("eth_getTransactionReceipt", None))
    with pytest.raises(RpcError, match="no receipt for 0xbb"):
        await sender.wait("0x" + "bb" * 32)
