"""Chain's typed reads over a scripted transport: the JSON-RPC each sends, Multicall3 aggregate3
encoding and decoding (failed and undecodable sub-calls, chunks in one batch), eth_getLogs chunks
and their halving, ERC-20 balances."""
from __future__ import annotations

import pytest
from eth_abi import decode, encode

from keeper.chain.multicall import (
    MULTICALL3,
    Call,
    CallFailed,
    calldata,
    decode_aggregate3,
    encode_aggregate3,
    returns,
    selector,
)
from keeper.errors import RpcError
from tests.helpers.fake_rpc import FakeTransport, Fault, Revert, fake_chain, hexdata

TOKEN = "0x1111111111111111111111111111111111111111"
ORACLE = "0x2222222222222222222222222222222222222222"
HOLDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TOPIC = "0x" + "ab" * 32


async def test_scalars_are_hex_decoded_and_block_tags_encoded():
    chain, fake = fake_chain()
    fake.on("eth_chainId", "0x1").on("eth_blockNumber", "0x1234").on("eth_getBalance", "0xde0b6b3a7640000")
    fake.on("eth_getTransactionCount", "0x7").on("eth_getCode", "0x6080")
    assert await chain.chain_id() == 1
    assert await chain.block_number() == 0x1234
    assert await chain.get_balance(HOLDER, 100) == 10**18
    assert await chain.nonce(HOLDER) == 7
    assert await chain.get_code(TOKEN, "latest") == bytes.fromhex("6080")
    assert fake.calls_of("eth_getBalance") == [[HOLDER, "0x64"]]
    assert fake.calls_of("eth_getTransactionCount") == [[HOLDER, "pending"]]


async def test_missing_block_is_an_error():
    chain, fake = fake_chain()
    fake.on("eth_getBlockByNumber", None)
    with pytest.raises(RpcError, match="block 99 not found"):
        await chain.get_block(99)
    assert fake.calls_of("eth_getBlockByNumber") == [["0x63", False]]


async def test_eth_call_sends_from_and_value_only_when_given():
    chain, fake = fake_chain()
    fake.on("eth_call", "0xbeef")
    assert await chain.eth_call(TOKEN, b"\x01\x02") == b"\xbe\xef"
    await chain.eth_call(TOKEN, b"", sender=HOLDER, value=5, block=7)
    assert fake.calls_of("eth_call") == [[{"to": TOKEN, "data": "0x0102"}, "latest"],
                                         [{"to": TOKEN, "data": "0x", "from": HOLDER, "value": "0x5"}, "0x7"]]


async def test_call_encodes_the_signature_and_decodes_outputs():
    chain, fake = fake_chain()
    fake.on_call(TOKEN, "balanceOf(address)",
                 lambda data: encode(["uint256"], [decode(["address"], data[4:])[0] == HOLDER.lower() and 42]))
    assert await chain.call(TOKEN, "balanceOf(address)", ["address"], [HOLDER], out=["uint256"]) == 42
    raw = await chain.call(TOKEN, "balanceOf(address)", ["address"], [HOLDER])
    assert raw == encode(["uint256"], [42])
    (params,) = fake.calls_of("eth_call")[:1]
    assert params[0]["data"] == "0x" + calldata("balanceOf(address)", ["address"], [HOLDER]).hex()


def test_aggregate3_round_trip_with_failures_and_undecodable_answers():
    calls = [Call(TOKEN, b"\x01", returns("uint256")), Call(TOKEN, b"\x02"), Call(ORACLE, b"\x03", returns("address")),
             Call(ORACLE, b"\x04", returns("uint256", "uint256"))]
    sent = encode_aggregate3(calls)
    assert sent[:4] == selector("aggregate3((address,bool,bytes)[])")
    assert decode(["(address,bool,bytes)[]"], sent[4:])[0] == tuple(
        (c.target.lower(), True, c.data) for c in calls)
    assert decode(["(address,bool,bytes)[]"], encode_aggregate3(calls, allow_failure=False)[4:])[0][0][1] is False
    raw = encode(["(bool,bytes)[]"], [[(True, encode(["uint256"], [7])), (True, b"raw"),
                                       (False, b"\x08\xc3\x79\xa0"), (True, b"\x00")]])
    seven, untouched, failed, undecodable = decode_aggregate3(calls, raw)
    assert seven == 7 and untouched == b"raw"
    assert isinstance(failed, CallFailed) and failed.args[0] == b"\x08\xc3\x79\xa0"
    assert isinstance(undecodable, CallFailed) and b"undecodable answer from " + ORACLE.encode() in undecodable.args[0]


def test_returns_checksums_addresses():
    word = encode(["address", "uint256"], [HOLDER.lower(), 3])
    assert returns("address", "uint256")(word) == (HOLDER, 3)


async def test_multicall_chunks_go_in_one_batch():
    chain, fake = fake_chain(multicall_chunk=2)
    for i in range(5):
        fake.on_call(TOKEN, f"f{i}()", encode(["uint256"], [i * 10]))
    fake.on_call(ORACLE, "broken()", Revert(b"\xde\xad"))
    calls = [Call(TOKEN, selector(f"f{i}()"), returns("uint256")) for i in range(5)]
    calls.insert(3, Call(ORACLE, selector("broken()")))
    out = await chain.multicall(calls, block=12)
    assert out[:3] + out[4:] == [0, 10, 20, 30, 40]
    assert isinstance(out[3], CallFailed) and out[3].args[0] == b"\xde\xad"
    (trip,) = fake.round_trips  # 6 calls in chunks of 2: three eth_calls, one HTTP request
    assert [m for m, _ in trip] == ["eth_call"] * 3
    assert all(p[0]["to"] == MULTICALL3 and p[1] == "0xc" for _, p in trip)
    assert await chain.multicall([]) == [] and len(fake.round_trips) == 1


async def test_multicall_to_a_configured_address():
    other = "0x3333333333333333333333333333333333333333"
    chain, fake = fake_chain(FakeTransport(multicall_address=other), multicall_address=other)
    fake.on_call(TOKEN, "decimals()", encode(["uint8"], [6]))
    assert await chain.multicall([Call(TOKEN, selector("decimals()"), returns("uint8"))]) == [6]
    assert fake.calls_of("eth_call")[0][0]["to"] == other


async def test_multicall_strict_names_the_failed_call():
    chain, fake = fake_chain()
    fake.on_call(TOKEN, "decimals()", encode(["uint8"], [18])).on_call(ORACLE, "latestAnswer()", Revert())
    with pytest.raises(RpcError, match=f"call to {ORACLE} \\(selector 0x{selector('latestAnswer()').hex()}\\) failed"):
        await chain.multicall_strict([Call(TOKEN, selector("decimals()"), returns("uint8")),
                                      Call(ORACLE, selector("latestAnswer()"))])


async def test_erc20_balances_in_one_multicall():
    chain, fake = fake_chain()
    balances = {TOKEN.lower(): 5, ORACLE.lower(): 9}
    tokens = {TOKEN: TOKEN, ORACLE: ORACLE}
    for t in tokens:
        fake.on_call(t, "balanceOf(address)", lambda data, t=t: encode(["uint256"], [balances[t.lower()]]))
    assert await chain.erc20_balances([(TOKEN, HOLDER), (ORACLE, HOLDER)]) == [5, 9]
    assert len(fake.round_trips) == 1


def log(block: int, index: int, address: str = TOKEN) -> dict:
    return {"address": address.lower(), "topics": [TOPIC.upper().replace("0X", "0x")], "data": "0x" + "00" * 31 + "01",
            "blockNumber": hex(block), "logIndex": hex(index), "transactionHash": "0x" + "cd" * 32}


async def test_get_logs_in_chunks_sorted():
    chain, fake = fake_chain(log_chunk_blocks=100)
    by_start = {0: [log(50, 1), log(50, 0)], 100: [], 200: [log(201, 0)]}
    fake.on("eth_getLogs", lambda params: by_start[int(params[0]["fromBlock"], 16)])
    logs = await chain.get_logs(TOKEN, [TOPIC], 0, 250)
    assert [(lg.block_number, lg.log_index) for lg in logs] == [(50, 0), (50, 1), (201, 0)]
    assert logs[0].address == TOKEN and logs[0].topics == [TOPIC] and logs[0].data[-1] == 1
    (trip,) = fake.round_trips
    assert [(p[0]["fromBlock"], p[0]["toBlock"]) for _, p in trip] == [("0x0", "0x63"), ("0x64", "0xc7"),
                                                                       ("0xc8", "0xfa")]


async def test_get_logs_halves_a_range_the_node_refuses():
    chain, fake = fake_chain(log_chunk_blocks=1000)

    def answer(params):
        f = params[0]
        span = int(f["toBlock"], 16) - int(f["fromBlock"], 16) + 1
        return Fault(-32000, "query returned more than 10000 results, block range too large") if span > 250 else []
    fake.on("eth_getLogs", answer)
    assert await chain.get_logs(TOKEN, [TOPIC], 0, 999) == []
    spans = [len(t) for t in fake.round_trips]
    assert spans == [1, 2, 4]  # one 1000-block range, two of 500, then four of 250 (each try one batch)


async def test_get_logs_other_errors_are_raised():
    chain, fake = fake_chain()
    fake.on("eth_getLogs", Fault(-32602, "invalid params"))
    with pytest.raises(RpcError, match="eth_getLogs: invalid params"):
        await chain.get_logs(TOKEN, [TOPIC], 0, 10)
    assert len(fake.round_trips) == 1


def test_hexdata_helper_encodes_words():
    assert hexdata(1, 2) == "0x" + "00" * 31 + "01" + "00" * 31 + "02"
