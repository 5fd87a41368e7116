"""`keeper scan` and `keeper run` as an operator starts them, against nodes that misbehave: a dead
URL ends with a clear message and exit status 2, never a traceback; a provider that refuses batches
and answers -32005 to wide eth_getLogs is used as it is; --log-level debug prints more than info."""
from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import sys

import pytest

from keeper_devnet.anvil import free_port
from keeper_devnet.world import KEEPER_KEY, KEEPER_KEY_ENV, config_text
from tests.helpers.rpc_proxy import RefuseBatch, RpcProxy, TooManyResults, wider_than
from tests.protocols.aave_v3.helpers import open_scenario


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


async def keeper_cli(*args: str, stop_after: float | None = None) -> tuple[int, str, str]:
    """Run the command; with ``stop_after`` send SIGINT that many seconds after the keeper logged
    its start (keeper run)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "keeper.cli", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, KEEPER_KEY_ENV: KEEPER_KEY})
    head = b""
    if stop_after is not None:
        assert proc.stderr is not None
        while b"keeper.started" not in head:
            line = await asyncio.wait_for(proc.stderr.readline(), 120)
            if not line:
                break
            head += line
        await asyncio.sleep(stop_after)
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), (head + err).decode()


def write_config(world, tmp_path, url: str) -> str:
    world.url = url
    path = tmp_path / "keeper.toml"
    path.write_text(config_text(world))
    return str(path)


@pytest.mark.parametrize("command", ["scan", "run"])
async def test_a_dead_node_ends_the_command_with_a_message_not_a_traceback(world, tmp_path, command):
    dead = f"http://127.0.0.1:{free_port()}/v3/SECRETKEY"
    code, out, err = await keeper_cli(command, "--config", write_config(world, tmp_path, dead))
    assert code == 2
    assert "Traceback" not in err and "cannot reach the node at 127.0.0.1:" in err
    assert "SECRETKEY" not in err + out  # the URL's path (an API key) is never printed


async def test_scan_through_a_provider_without_batches_and_with_a_log_limit(anvil, deployer, world, tmp_path):
    await open_scenario(deployer, world)
    async with RpcProxy(anvil.url) as proxy:
        proxy.on(None, RefuseBatch())
        proxy.on("eth_getLogs", TooManyResults(), when=wider_than(10))
        code, out, err = await keeper_cli("scan", "--json", "--config", write_config(world, tmp_path, proxy.url))
        assert proxy.faults("eth_getLogs") and proxy.faults()
    assert code == 0 and "Traceback" not in err, err
    rows = json.loads(out)["accounts"]
    assert len(rows) >= 4 and {r["protocol"] for r in rows} == {"aave_v3"}


async def test_debug_level_prints_more_than_info(anvil, world, tmp_path):
    cfg = write_config(world, tmp_path, anvil.url)
    code_info, _, info = await keeper_cli("run", "--config", cfg, stop_after=2)
    code_debug, _, debug = await keeper_cli("--log-level", "debug", "run", "--config", cfg, stop_after=2)
    assert code_info == code_debug == 0
    assert "keeper.started" in info and "keeper.started" in debug
    assert "step.done" in debug and "step.done" not in info
    assert "Traceback" not in info + debug
