"""The executor and the transaction manager when the node misbehaves after a plan started going out
(through a fault-injecting proxy): a later transaction of the plan refused, receipt polls answered
with garbage for a while. A refusal is recorded as failed with the node's reason, nothing is retried
blindly and the other plans go on; unanswered receipts leave the records pending, never failed, until
the chain's answer corrects them."""
from __future__ import annotations

import asyncio
import copy
import json

import pytest

from tests.helpers.keeper import make_keeper, run_and_close, step
from tests.helpers.rpc_proxy import Error, Garbage, RpcProxy
from tests.protocols.aave_v3.helpers import drop_weth, open_scenario


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


async def test_rejected_after_the_approval_went_out(deployer, anvil, world, tmp_path):
    await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    sends = []

    def second(params) -> bool:  # the first plan's liquidation, right after its approval
        sends.append(params[0])
        return len(sends) == 2

    async with RpcProxy(anvil.url) as proxy:
        proxy.on("eth_sendRawTransaction", Error(-32000, "replacement transaction underpriced"), when=second)
        keeper = await make_keeper(world, tmp_path, rpc_url=proxy.url)
        await run_and_close(keeper)
    report = keeper.recorder.report()
    [failed] = report["failed"]
    assert "failed after earlier transactions went out" in failed["reason"]
    assert "replacement transaction underpriced" in failed["reason"]
    assert failed["reason"].startswith("sending liquidationCall")
    assert report["reverted"] == [] and len(report["liquidations"]) == 3  # the other plans went on
    assert len(sends) == 5  # approval, refused liquidation, three liquidations: nothing sent again


async def test_receipts_unanswered_are_pending_then_corrected(deployer, anvil, world, tmp_path):
    await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    record = tmp_path / "outcomes.jsonl"
    async with RpcProxy(anvil.url) as proxy:
        keeper = await make_keeper(world, tmp_path, rpc_url=proxy.url, record_file=str(record))
        try:
            proxy.on("eth_getTransactionReceipt", Garbage())  # every receipt poll: a load balancer's error page
            sent = await keeper.step(await keeper.chain.block_number())
            assert [o.status.value for o in sent] == ["pending"] * 4
            for _ in range(50):
                if len(proxy.faults("eth_getTransactionReceipt")) >= 3 * 5:  # three polls at least
                    break
                await asyncio.sleep(0.1)
            assert [o.status.value for o in keeper.recorder.outcomes] == ["pending"] * 4  # not failed
            proxy.clear()
            await keeper.settle(30)
        finally:
            await keeper.close()
    report = keeper.recorder.report()
    assert len(report["liquidations"]) == 4 and report["failed"] == report["pending"] == []
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    by_attempt: dict[int, list[str]] = {}
    for x in lines:
        by_attempt.setdefault(x["attempt"], []).append(x["status"])
    assert sorted(by_attempt.values()) == [["pending", "confirmed"]] * 4
    for o in report["liquidations"]:
        receipt = await deployer.w3.eth.get_transaction_receipt(o["tx_hash"])
        assert receipt["status"] == 1
