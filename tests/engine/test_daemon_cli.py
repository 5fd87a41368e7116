"""`keeper run` as an operator runs it: a separate process acting on new blocks, stopped by SIGTERM;
`keeper devnet` writing a config that `keeper scan` can use. The key never appears in any output."""
from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from keeper_devnet.anvil import free_port
from keeper_devnet.protocols.aave_v3.common import account_data
from keeper_devnet.tokens import set_price
from keeper_devnet.world import (
    ALL_PROTOCOLS,
    DEVNET_PASSWORD,
    DEVNET_PASSWORD_ENV,
    KEEPER_KEY,
    KEEPER_KEY_ENV,
    config_text,
    open_position,
)

from keeper.config import load_config

KEEPER = [sys.executable, "-m", "keeper.cli"]
KEY_HEX = KEEPER_KEY.removeprefix("0x").lower()


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


async def test_run_daemon_liquidates_and_stops_on_sigterm(deployer, world, tmp_path):
    user = world.take_accounts(1)[0]
    await open_position(deployer, world, user, {"WETH": 10}, {"USDC": 19_000})
    cfg = tmp_path / "k.toml"
    record = tmp_path / "outcomes.jsonl"
    cfg.write_text(config_text(world, record_file=str(record)))
    env = {**os.environ, KEEPER_KEY_ENV: KEEPER_KEY}
    proc = await asyncio.create_subprocess_exec(*KEEPER, "--log-json", "run", "--config", str(cfg), env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await asyncio.sleep(1.5)  # started, watching blocks, nothing to do yet
        assert proc.returncode is None
        weth = world.tokens["WETH"]
        await set_price(deployer, weth, weth.price * 7 // 10)
        for _ in range(100):  # the daemon notices the new block by itself
            if record.exists() and "confirmed" in record.read_text():
                break
            await asyncio.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()[-2000:]
    outcomes = [json.loads(line) for line in record.read_text().splitlines()]
    # Recorded when sent (pending), then again when mined, under the same journal attempt.
    assert [o["status"] for o in outcomes] == ["pending", "confirmed"]
    assert outcomes[0]["attempt"] == outcomes[1]["attempt"] and outcomes[0]["tx_hash"] == outcomes[1]["tx_hash"]
    assert outcomes[1]["account"] == user
    assert (await account_data(deployer, world.aave, user))[5] > 10**18  # healthy again
    logs = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    events = [e["event"] for e in logs]
    assert "keeper.started" in events and "liquidation.confirmed" in events and "keeper.stopped" in events
    assert KEY_HEX not in (out + err).decode().lower()


def strings(value: Any) -> list[str]:
    """Every string value in a parsed TOML document."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


@pytest.mark.anvil
async def test_devnet_command_writes_a_config_scan_can_use(tmp_path):
    port = free_port()
    cfg = tmp_path / "devnet.toml"
    proc = await asyncio.create_subprocess_exec(*KEEPER, "devnet", "--port", str(port), "--config-out", str(cfg),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        lines = []
        while not any(line.startswith("config:") for line in lines):
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            assert line, (await proc.stderr.read()).decode()[-2000:]
            lines.append(line)
        assert Path(lines[-1].split(":", 1)[1].strip()) == cfg
        # No external RPC: every URL of the world's config is the local node, and prices are pulled
        # from the world's MockPyth, not from Hermes (the demo writes this config, with `execution`).
        written = tomllib.loads(cfg.read_text())
        urls = [s for s in strings(written) if "://" in s]
        assert urls and {urlsplit(u).hostname for u in urls} == {"127.0.0.1"}, urls
        assert written["chain"]["rpc_url"] == f"http://127.0.0.1:{port}"
        assert written["pull_oracle"]["source"] == "mock_pyth"
        assert load_config(cfg).pull_oracle.source == "mock_pyth"
        env = {**os.environ, DEVNET_PASSWORD_ENV: DEVNET_PASSWORD}
        scan = await asyncio.create_subprocess_exec(*KEEPER, "scan", "--config", str(cfg), "--json", env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(scan.communicate(), 60)
        assert scan.returncode == 0, err.decode()[-2000:]
        rows = json.loads(out)["accounts"]
        # Aave has lenders only; the other protocols' demo borrowers are all healthy before any drop.
        assert {r["protocol"] for r in rows} == set(ALL_PROTOCOLS) - {"aave_v3"}
        assert rows and not any(r["liquidatable"] for r in rows)
    finally:
        proc.send_signal(signal.SIGINT)
        rest, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert KEY_HEX not in ("".join(lines) + rest.decode() + err.decode()).lower()
