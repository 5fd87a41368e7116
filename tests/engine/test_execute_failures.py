"""The executor when the node misbehaves after a plan started going out: a later transaction of the
plan rejected, or receipts that never come. Each is recorded as failed with the reason; nothing is
retried blindly and the daemon goes on."""
from __future__ import annotations

import copy

import pytest

from keeper.errors import RpcError
from tests.helpers.keeper import make_keeper, run_and_close
from tests.protocols.aave_v3.helpers import drop_weth, open_scenario


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


async def test_rejected_after_the_approval_went_out(deployer, world, tmp_path, monkeypatch):
    await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    keeper = await make_keeper(world, tmp_path)
    send, calls = keeper.sender.send, []

    async def flaky(tx, fees):
        calls.append(tx.what)
        if len(calls) == 2:  # the first plan's liquidation, right after its approval
            raise RpcError("replacement transaction underpriced")
        return await send(tx, fees)

    monkeypatch.setattr(keeper.sender, "send", flaky)
    await run_and_close(keeper)
    report = keeper.recorder.report()
    assert calls[0].startswith("approve") and calls[1].startswith("liquidationCall")
    [failed] = report["failed"]
    assert "failed after earlier transactions went out" in failed["reason"]
    assert "replacement transaction underpriced" in failed["reason"]
    assert report["reverted"] == [] and len(report["liquidations"]) == 3  # the other plans went on


async def test_receipts_that_never_come(deployer, world, tmp_path, monkeypatch):
    await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    keeper = await make_keeper(world, tmp_path)

    async def no_receipt(tx_hash):
        raise RpcError(f"no receipt for {tx_hash} after 120.0s")

    monkeypatch.setattr(keeper.sender, "wait", no_receipt)
    await run_and_close(keeper)
    report = keeper.recorder.report()
    assert len(report["failed"]) == 4 and report["liquidations"] == []
    assert all(o["reason"].startswith("waiting for receipts failed: no receipt for 0x") for o in report["failed"])
