"""Start-up refuses what would make every later record or send fail (an unwritable record file, a
native feed without a price, a wallet without gas money); the balance falling below the minimum at
run time is said once; an account whose plan failed is left alone for failure_backoff_blocks."""
from __future__ import annotations

import copy

import pytest
import structlog
from keeper_devnet.tokens import set_price

from tests.txmanager.helpers import fresh_keeper
from tests.helpers.keeper import make_keeper, startup_error, step
from tests.helpers.rpc_proxy import Error, RpcProxy
from tests.protocols.aave_v3.helpers import drop_weth, open_scenario


@pytest.fixture
async def world(deployer, real_world, snapshot):
    await fresh_keeper(deployer, real_world)
    yield copy.deepcopy(real_world)


async def test_record_file_must_be_writable(world, tmp_path):
    await startup_error(world, tmp_path, r"keeper.record_file .*: cannot append to it: No such file or directory",
                        record_file=str(tmp_path / "missing-folder" / "out.jsonl"))
    await startup_error(world, tmp_path, r"cannot append to it: Is a directory", record_file=str(tmp_path))


async def test_native_feed_must_answer_a_price(deployer, world, tmp_path):
    await set_price(deployer, world.tokens["WETH"], 0)  # the WETH feed prices gas in the devnet config
    await startup_error(world, tmp_path, r"keeper.native_usd_feed .* does not answer a price: .*non-positive")


async def test_wallet_below_the_minimum_native_balance(deployer, world, tmp_path, monkeypatch):
    monkeypatch.setenv("KEEPER_KEEPER__MIN_NATIVE_BALANCE", "1000000")
    await startup_error(world, tmp_path, r"holds \d+\.\d+ of the native token, below keeper.min_native_balance")


async def test_low_balance_at_run_time_is_said_once(deployer, world, tmp_path, monkeypatch):
    monkeypatch.setenv("KEEPER_KEEPER__MIN_NATIVE_BALANCE", "5")
    keeper = await make_keeper(world, tmp_path)
    me = world.keeper_address
    rich = await deployer.w3.eth.get_balance(me)
    try:
        with structlog.testing.capture_logs() as logs:
            await deployer.rpc("anvil_setBalance", [me, hex(10**18)])  # 1 ETH < 5
            for _ in range(3):
                await deployer.rpc("evm_mine", [])
                await keeper.manager.tick(await keeper.chain.block_number())
            await deployer.rpc("anvil_setBalance", [me, hex(rich)])
            await deployer.rpc("evm_mine", [])
            await keeper.manager.tick(await keeper.chain.block_number())
            await deployer.rpc("anvil_setBalance", [me, hex(10**18)])
            await deployer.rpc("evm_mine", [])
            await keeper.manager.tick(await keeper.chain.block_number())
    finally:
        await keeper.close()
    events = [e["event"] for e in logs if e["event"].startswith("wallet.")]
    assert events == ["wallet.low_balance", "wallet.balance_ok", "wallet.low_balance"]


async def test_a_failing_account_backs_off_for_the_configured_blocks(deployer, anvil, world, tmp_path, monkeypatch):
    monkeypatch.setenv("KEEPER_KEEPER__FAILURE_BACKOFF_BLOCKS", "2")
    await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    async with RpcProxy(anvil.url) as proxy:
        proxy.on("eth_sendRawTransaction", Error(-32000, "insufficient funds for gas * price + value"))
        keeper = await make_keeper(world, tmp_path, rpc_url=proxy.url)
        sends = []
        try:
            for _ in range(4):
                before = len(proxy.calls("eth_sendRawTransaction"))
                await step(keeper)
                sends.append(len(proxy.calls("eth_sendRawTransaction")) - before)
                await deployer.rpc("evm_mine", [])
        finally:
            await keeper.close()
    # Block 1: each of the four plans tries its first transaction (refused); blocks 2 and 3: left
    # alone; block 4: tried again.
    assert sends == [4, 0, 0, 4]
    failed = keeper.recorder.report()["failed"]
    assert len(failed) == 8 and all("insufficient funds" in o["reason"] for o in failed)
