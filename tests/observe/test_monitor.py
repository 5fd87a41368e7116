"""The monitor of a running keeper (keeper.run against the session Anvil): /metrics parsed by
prometheus_client's parser agrees with the recorder and the chain after a run with liquidations,
every metric the Grafana dashboard queries is served, /healthz turns 503 while the head is frozen
and 200 when it moves again, and a wallet below its minimum alerts a webhook once, not per block."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from keeper.engine.record import Status
from keeper_devnet.world import KEEPER_ADDRESS
from tests.observe.helpers import WebhookReceiver, health, observed_keeper, running, scrape, until
from tests.protocols.aave_v3.helpers import drop_weth, open_scenario

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "keeper.json"
PROMQL_WORDS = {"rate", "increase", "sum", "by", "histogram_quantile", "le", "method", "endpoint"}


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


def value(m: dict, name: str, **labels: str) -> float:
    return m[(name, tuple(sorted(labels.items())))]


def dashboard_metrics() -> set[str]:
    dash = json.loads(DASHBOARD.read_text())
    names: set[str] = set()
    assert dash["panels"]
    for p in dash["panels"]:
        assert p["title"] and p["type"] in {"stat", "timeseries"} and p["targets"]
        for t in p["targets"]:
            assert t["refId"] and t["expr"]
            names |= set(re.findall(r"\bkeeper_[a-z_]+", t["expr"]))
    return names


async def test_metrics_match_the_recorder_and_the_chain_after_liquidations(deployer, world, tmp_path):
    await open_scenario(deployer, world)
    nonce0 = await deployer.w3.eth.get_transaction_count(KEEPER_ADDRESS)
    keeper = await observed_keeper(world, tmp_path, monitor={"heartbeat_blocks": 1})
    try:
        async with running(keeper):
            await until(lambda: keeper.telemetry.blocks_processed >= 1, what="a first block")
            await drop_weth(deployer, world)
            confirmed = lambda: [o for o in keeper.recorder.outcomes if o.status is Status.CONFIRMED]  # noqa: E731
            await until(lambda: len(confirmed()) == 4, what="four liquidations")
            await until(lambda: not keeper.telemetry.in_flight, what="receipts")
            for _ in range(5):  # a scrape with no outcome recorded meanwhile (the keeper keeps stepping)
                before = (len(keeper.recorder.outcomes), keeper.telemetry.blocks_processed)
                m = await scrape(keeper)
                rec, blocks = list(keeper.recorder.outcomes), keeper.telemetry.blocks_processed
                if (len(rec), blocks) == before:
                    break
        sent = await deployer.w3.eth.get_transaction_count(KEEPER_ADDRESS) - nonce0
    finally:
        await keeper.close()
    for status in Status:
        assert value(m, "keeper_liquidations_total", protocol="aave_v3", status=status.value) == sum(
            1 for o in rec if o.status is status and o.protocol == "aave_v3")
    assert sent >= 4
    assert value(m, "keeper_transactions_total", event="sent") == sent  # every nonce the wallet used
    assert value(m, "keeper_transactions_total", event="confirmed") == sent
    assert value(m, "keeper_transactions_total", event="reverted") == 0
    assert value(m, "keeper_transactions_in_flight") == 0
    realised = sum(o.realised_profit or 0 for o in rec if o.status is Status.CONFIRMED)
    assert value(m, "keeper_realised_profit_usd") == pytest.approx(realised / 1e8)
    assert value(m, "keeper_gas_spent_usd_total") > 0
    assert value(m, "keeper_blocks_processed_total") == blocks >= 2
    assert value(m, "keeper_positions_tracked", protocol="aave_v3") >= 4
    assert value(m, "keeper_protocol_ready", protocol="aave_v3") == 1
    eth = await deployer.w3.eth.get_balance(KEEPER_ADDRESS)
    assert value(m, "keeper_wallet_eth") == pytest.approx(eth / 1e18, rel=1e-3)
    # Every transaction was sent for a block the loop had seen: the histogram counts them all.
    assert value(m, "keeper_head_to_submit_seconds_count") == sent
    ep = keeper.telemetry.rpc_active
    assert value(m, "keeper_rpc_requests_total", endpoint=ep, method="eth_sendRawTransaction") == sent
    assert value(m, "keeper_rpc_requests_total", endpoint=ep, method="eth_blockNumber") >= 2
    assert value(m, "keeper_rpc_endpoint_active", endpoint=ep) == 1
    # Every metric the dashboard queries is served.
    served = {name for name, _ in m}
    missing = {n for n in dashboard_metrics() if n not in served}
    assert not missing, missing


async def test_healthz_turns_503_on_a_frozen_head_and_200_when_it_moves(deployer, world, tmp_path):
    async with WebhookReceiver() as hook:
        keeper = await observed_keeper(world, tmp_path, monitor={"stale_after_seconds": 1.0,
                                                                 "webhook_url": hook.url})
        try:
            async with running(keeper):
                await until(lambda: keeper.telemetry.blocks_processed >= 1, what="a first block")
                status, body = await health(keeper)
                assert status == 200 and body["status"] == "ok"
                assert body["protocols"] == {name: "ready" for name in keeper.by_name}
                assert body["last_block"] == await deployer.w3.eth.block_number and body["head_lag"] == 0
                assert float(body["wallet_eth"]) > 0 and body["in_flight"] == 0
                # Anvil mines only when asked: the head stays where it is.
                await until(lambda: not keeper.telemetry.healthy(), timeout=10, what="staleness")
                status, body = await health(keeper)
                assert status == 503 and body["status"] == "stale" and body["seconds_since_block"] > 1.0
                await until(lambda: any("no block processed" in t for t in hook.texts), timeout=10,
                            what="the stale-head alert")
                await deployer.rpc("evm_mine", [])
                head = await deployer.w3.eth.block_number
                await until(lambda: keeper.telemetry.last_block == head, timeout=10, what="the new block")
                status, body = await health(keeper)
                assert status == 200 and body["last_block"] == head
                await keeper.telemetry.alerter.flush()
        finally:
            await keeper.close()
    stale = [t for t in hook.texts if "no block processed" in t]
    assert len(stale) == 1  # once for the whole frozen spell, not once per check


async def test_a_low_wallet_alerts_the_webhook_once_until_it_recovers(deployer, world, tmp_path):
    await deployer.rpc("anvil_setBalance", [KEEPER_ADDRESS, hex(10**16)])  # 0.01 ETH
    async with WebhookReceiver() as hook:
        keeper = await observed_keeper(world, tmp_path, monitor={"min_wallet_eth": 0.05, "webhook_url": hook.url})
        try:
            async with running(keeper):
                for _ in range(6):  # six blocks with a low wallet
                    await deployer.rpc("evm_mine", [])
                    head = await deployer.w3.eth.block_number
                    await until(lambda h=head: keeper.telemetry.last_block == h, what="the block")
                await deployer.rpc("anvil_setBalance", [KEEPER_ADDRESS, hex(10**18)])
                await deployer.rpc("evm_mine", [])
                head = await deployer.w3.eth.block_number
                await until(lambda: keeper.telemetry.last_block == head, what="the block")
                await deployer.rpc("anvil_setBalance", [KEEPER_ADDRESS, hex(10**16)])
                await deployer.rpc("evm_mine", [])
                head = await deployer.w3.eth.block_number
                await until(lambda: keeper.telemetry.last_block == head, what="the block")
                await keeper.telemetry.alerter.flush()
        finally:
            await keeper.close()
    low = [t for t in hook.texts if "below the minimum" in t]
    # Once for the first spell (start-up and six blocks), once again after it had recovered.
    assert len(low) == 2 and "0.01 ETH" in low[0]
    assert sum("wallet back to" in t for t in hook.texts) == 1
