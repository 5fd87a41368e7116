"""`keeper run` as a process: SIGTERM while a request hangs exits within seconds with status 0 (what
is in flight stays in the journal); a second Ctrl-C exits at once. Secrets put where they do not
belong (a private key in private_key_env or signer.address, a password in password_env,
credentials in rpc_url) are refused or shown as scheme and host only: a clear error, and none of
them anywhere in the output."""
from __future__ import annotations

import asyncio
import copy
import signal
import subprocess
import sys
import time

import pytest
from keeper_devnet.world import (
    DEVNET_PASSWORD_ENV,
    KEEPER_KEY,
    KEEPER_KEY_ENV,
    config_text,
    write_devnet_keystore,
)

from tests.helpers.rpc_proxy import Hang, HttpStatus, RpcProxy
from tests.txmanager.helpers import KEEPER, KEY_HEX, fresh_keeper, log_events, spawn_keeper, wait_for


@pytest.fixture
async def world(deployer, real_world, snapshot):
    await fresh_keeper(deployer, real_world)
    yield copy.deepcopy(real_world)


async def started(out) -> None:
    async def check() -> bool:
        return out.exists() and '"keeper.started"' in out.read_text()
    await wait_for("keeper.started", check, timeout=60)


async def running_behind_a_hanging_node(deployer, world, anvil, tmp_path):
    """A keeper process started through a proxy that then stops answering eth_call; a block is mined,
    and its step hangs in its mirror's reads (heads and the transaction manager's polls still
    answer: the request hanging is the step's, not another task's while the step waits for a
    block, in which case a stop would not wait for anything)."""
    proxy = await RpcProxy(anvil.url).start()
    cfg, out = tmp_path / "k.toml", tmp_path / "out.txt"
    cfg.write_text(config_text(world).replace(world.url, proxy.url))
    proc = await spawn_keeper(cfg, out)
    await started(out)
    proxy.on("eth_call", Hang())

    async def hanging() -> bool:
        if not proxy.faults("eth_call"):
            await deployer.rpc("evm_mine", [])
            await asyncio.sleep(0.5)
        return bool(proxy.faults("eth_call"))
    await wait_for("a request hanging", hanging, timeout=30)
    return proxy, proc, out


async def test_sigterm_during_a_hung_request_exits_within_seconds(deployer, world, anvil, tmp_path):
    proxy, proc, out = await running_behind_a_hanging_node(deployer, world, anvil, tmp_path)
    try:
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        took = time.monotonic() - t0
    finally:
        await proxy.stop()
    assert code == 0 and took < 5, (code, took)
    events = [e["event"] for e in log_events(out)]
    assert "keeper.stopping" in events and "keeper.stopped" in events


async def test_a_second_ctrl_c_exits_at_once(deployer, world, anvil, tmp_path):
    proxy, proc, out = await running_behind_a_hanging_node(deployer, world, anvil, tmp_path)
    try:
        proc.send_signal(signal.SIGINT)
        await wait_for("the first signal handled", lambda: _has(out, '"keeper.stopping"'), timeout=10)
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 10)
    finally:
        await proxy.stop()
    assert code == 130
    assert "keeper.exit_now" in [e["event"] for e in log_events(out)]
    assert "keeper.stopped" not in [e["event"] for e in log_events(out)]  # no waiting for anything


async def _has(path, text: str) -> bool:
    return path.exists() and text in path.read_text()


# ---- secrets ----------------------------------------------------------------------------------

def run(config_text_: str, tmp_path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "k.toml"
    cfg.write_text(config_text_)
    import os
    environ = {**os.environ, KEEPER_KEY_ENV: KEEPER_KEY, **(env or {})}
    return subprocess.run([*KEEPER, "run", "--config", str(cfg)], env=environ, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize("key", [KEEPER_KEY, KEEPER_KEY.removeprefix("0x")])
def test_a_private_key_in_private_key_env_is_refused_unshown(world, tmp_path, key):
    res = run(config_text(world).replace(f'private_key_env = "{KEEPER_KEY_ENV}"', f'private_key_env = "{key}"'),
              tmp_path)
    assert res.returncode == 2
    assert "signer.private_key_env" in res.stderr and "never a secret itself" in res.stderr
    assert KEY_HEX not in (res.stdout + res.stderr).lower()


def test_a_private_key_in_signer_address_is_refused_unshown(world, tmp_path):
    res = run(config_text(world).replace(f'address = "{world.keeper_address}"', f'address = "{KEEPER_KEY}"'),
              tmp_path)
    assert res.returncode == 2
    assert "signer.address" in res.stderr and "looks like a private key" in res.stderr
    assert KEY_HEX not in (res.stdout + res.stderr).lower()


def test_a_private_key_in_any_other_field_is_refused_unshown(world, tmp_path):
    text = config_text(world) + f'\n[store]\npath = "{KEEPER_KEY.removeprefix("0x")}"\n'
    res = run(text, tmp_path)
    assert res.returncode == 2 and "store.path" in res.stderr and "looks like a private key" in res.stderr
    assert KEY_HEX not in (res.stdout + res.stderr).lower()


@pytest.mark.parametrize("password", ["correct horse: battery staple!", "hunter2isMyPassword"])
def test_a_password_in_password_env_is_never_shown(world, tmp_path, password):
    ks = write_devnet_keystore(tmp_path / "ks.json")
    text = config_text(world, keystore=ks).replace(f'password_env = "{DEVNET_PASSWORD_ENV}"',
                                                   f'password_env = "{password}"')
    res = run(text, tmp_path)
    assert res.returncode == 2 and "signer.password_env" in res.stderr, res.stderr
    assert password not in res.stdout + res.stderr


CREDENTIALS = ("keeperuser", "S3cretPassw0rd", "SECRETAPIKEY123")


def secret_url(proxy_url: str) -> str:
    return proxy_url.replace("http://", f"http://{CREDENTIALS[0]}:{CREDENTIALS[1]}@") + f"/?apikey={CREDENTIALS[2]}"


async def test_rpc_url_credentials_appear_as_scheme_and_host_only(deployer, world, anvil, tmp_path):
    async with RpcProxy(anvil.url) as proxy:
        proxy.on(None, HttpStatus(503))  # down at start-up: the error names the node
        res = await asyncio.to_thread(run, config_text(world).replace(world.url, secret_url(proxy.url)), tmp_path)
        assert res.returncode == 2
        host = proxy.url.removeprefix("http://")  # the endpoint as host:port (failover's label)
        assert f"cannot reach the node at {host}" in res.stderr and "HTTP 503" in res.stderr
        assert not any(c in res.stdout + res.stderr for c in CREDENTIALS)
        # Up at start-up, then 5xx answers while running: logged with the public form only. Set
        # from the environment as the config's description advises.
        proxy.clear()
        cfg, out = tmp_path / "k2.toml", tmp_path / "out.txt"
        cfg.write_text(config_text(world))
        proc = await spawn_keeper(cfg, out, env={"KEEPER_CHAIN__RPC_URL": secret_url(proxy.url)})
        try:
            await started(out)
            proxy.on("eth_feeHistory", HttpStatus(503))
            await deployer.rpc("evm_mine", [])  # a new block: the keeper steps, and meets the 5xx
            await wait_for("a step failing on a 5xx", lambda: _has(out, '"step.failed"'), timeout=60)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0
    text = out.read_text()
    failed = [e for e in log_events(out) if e["event"] == "step.failed"]
    assert failed and proxy.url in failed[0]["error"] and "HTTP 503" in failed[0]["error"]
    assert not any(c in text for c in CREDENTIALS)
    assert KEY_HEX not in text.lower()


def test_the_wrapper_scrubs_a_registered_url_anywhere(capsys):
    """The last line of defence: any log value holding a registered URL shows its public form."""
    from keeper.log import setup_logging
    from keeper.secrets import register_url
    import structlog
    setup_logging(json_lines=True)
    url = "https://user:pw123456@mainnet.example.org/v3/abcdef0123456789?key=zzzz9999"
    assert register_url(url) == "https://mainnet.example.org"
    structlog.get_logger().error("x", error=f"failed at {url}: boom", items=[url])
    err = capsys.readouterr().err
    assert "https://mainnet.example.org" in err
    assert not any(s in err for s in ("pw123456", "abcdef0123456789", "zzzz9999", "user:"))
    assert sys.modules["keeper.secrets"].scrub("/v3/abcdef0123456789") == "[redacted]"
