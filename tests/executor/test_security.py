"""Who may make the LiquidationExecutor do anything: only its owner starts a flow or withdraws; a
callback is accepted only from the contract a running flow called. Also withdraw and the
`keeper executor deploy / withdraw` commands."""
from __future__ import annotations

import asyncio
import os
import sys

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak
from keeper_devnet.protocols.aave_v3.real import pool_artifact as aave_pool_artifact
from keeper_devnet.tokens import mint
from keeper_devnet.world import KEEPER_ADDRESS, KEEPER_KEY, KEEPER_KEY_ENV, config_text

from keeper.chain.signer import Signer
from keeper.executor import (
    ExecutorError,
    FlashSource,
    Profit,
    artifact,
    executor_abi,
    owner_of,
    withdraw,
    withdraw_calldata,
)
from tests.executor.helpers import (
    ExecWorld,
    aave_call,
    balance,
    build_exec_world,
    comet_call,
    executor_error,
    gearbox_full_call,
    gearbox_partial_call,
    morpho_call,
    preview,
    revert_of,
    send,
)

pytestmark = pytest.mark.anvil

KEEPER = [sys.executable, "-m", "keeper.cli"]


@pytest.fixture(scope="module")
async def exec_world(deployer):
    ew = await build_exec_world(deployer)
    try:
        yield ew
    finally:
        await ew.chain.rpc.close()


@pytest.fixture
async def ew(exec_world, snapshot):
    yield exec_world


@pytest.fixture
async def attacker(ew) -> Signer:
    who = Signer(Account.create())
    await ew.d.rpc("anvil_setBalance", [who.address, hex(10**18)])
    return who


async def every_function(ew: ExecWorld) -> dict[str, bytes]:
    """Calldata for every state-changing function of the executor: the owner's entry points with a
    real liquidation each (so that only the caller decides), withdraw, and each callback with the
    arguments its lender would pass."""
    usdc, weth = ew.token("USDC"), ew.token("WETH")
    swap = ew.swap_all("WETH", "USDC")
    p = Profit(usdc.address, 0)
    abi = executor_abi()
    job = encode(["address", "uint256", "bytes"], [usdc.address, 10**9, b"\x00" * 64])
    return {
        "liquidateAaveV3": aave_call(ew, swap, FlashSource.MORPHO_BLUE, debt=usdc.units(10_000))(p),
        "liquidateMorphoBlue": morpho_call(ew, swap, seized=weth.units(5))(p),
        "liquidateCompoundV3": comet_call(ew, swap, base_amount=usdc.units(10_000))(p),
        "liquidateGearboxPartial": (await gearbox_partial_call(ew, swap, FlashSource.MORPHO_BLUE,
                                                               repaid=usdc.units(5_000)))(p),
        "liquidateGearboxFull": (await gearbox_full_call(ew, 5, FlashSource.MORPHO_BLUE))[0](p),
        "withdraw": withdraw_calldata(usdc.address, KEEPER_ADDRESS),
        "onMorphoLiquidate": abi.fn("onMorphoLiquidate").encode(10**9, job),
        "onMorphoFlashLoan": abi.fn("onMorphoFlashLoan").encode(10**9, job),
        "executeOperation": abi.fn("executeOperation").encode(usdc.address, 10**9, 5 * 10**5, ew.executor, job),
        "uniswapV3FlashCallback": abi.fn("uniswapV3FlashCallback").encode(3 * 10**6, 0, job),
    }


CALLBACKS = {"onMorphoLiquidate", "onMorphoFlashLoan", "executeOperation", "uniswapV3FlashCallback"}


def functions(mutability: str) -> set[str]:
    return {e["name"] for e in artifact()["abi"] if e["type"] == "function" and (e["stateMutability"] == "view")
            == (mutability == "view")}


def test_the_only_view_is_owner():
    assert functions("view") == {"owner"}


async def test_nobody_but_the_owner_can_call_anything(ew, attacker):
    """Every state-changing function, called by another address, reverts: the entry points and
    withdraw with NotOwner, the callbacks with UnexpectedCallback (no flow of the executor's own is
    running). Sent as transactions they revert on chain and move nothing. Meanwhile the owner's
    entry points do work (the previews pay)."""
    usdc = ew.token("USDC")
    await mint(ew.d, usdc, ew.executor, usdc.units(1_000))  # something to steal
    calls = await every_function(ew)
    assert set(calls) == functions("state-changing")  # a new function needs its case here
    for name, data in calls.items():
        expected = "UnexpectedCallback" if name in CALLBACKS else "NotOwner"
        for caller in (attacker.address, ew.d.sender, KEEPER_ADDRESS):
            assert (await executor_error(ew, data, sender=caller))[0] == expected, (name, caller)
        receipt = await send(ew, data, signer=attacker, gas=2_000_000)
        assert receipt.status == 0, name
    assert await balance(ew, usdc.address, ew.executor) == usdc.units(1_000)
    assert await balance(ew, usdc.address, attacker.address) == 0
    for name, data in calls.items():  # the same calldata from the owner: each liquidation pays
        if name.startswith("liquidate"):
            assert await preview(ew, data) > 0, name


async def test_callbacks_refuse_the_owner_outside_a_flow(ew):
    """The owner calling a callback directly is no flow either."""
    calls = await every_function(ew)
    for name in CALLBACKS:
        assert (await executor_error(ew, calls[name]))[0] == "UnexpectedCallback", name


async def test_aave_pool_cannot_be_made_to_call_back_outside_a_flow(ew, attacker):
    """An attacker calls the real Aave Pool's flashLoanSimple with the executor as receiver: the Pool
    (a lender the executor trusts) calls executeOperation, which refuses, so the whole loan reverts."""
    usdc = ew.token("USDC")
    job = encode(["address", "uint256", "bytes"], [usdc.address, usdc.units(1_000), b""])
    pool_abi = aave_pool_artifact().abi
    data = bytes.fromhex(ew.d.at(ew.world.aave.pool, pool_abi).encode_abi(
        "flashLoanSimple", [ew.executor, usdc.address, usdc.units(1_000), job, 0])[2:])
    raw = await revert_of(ew, data, sender=attacker.address, to=ew.world.aave.pool)
    assert raw == keccak(text="UnexpectedCallback()")[:4]  # the Pool passes the receiver's revert through


async def test_owner_withdraws(ew, attacker):
    usdc, weth = ew.token("USDC"), ew.token("WETH")
    await mint(ew.d, usdc, ew.executor, usdc.units(250))
    await mint(ew.d, weth, ew.executor, weth.units(1))
    assert await owner_of(ew.chain, ew.executor) == ew.owner.address
    with pytest.raises(ExecutorError, match=f"owned by {ew.owner.address}, not by the signer {attacker.address}"):
        await withdraw(ew.chain, attacker, ew.executor, usdc.address)
    receipt = await withdraw(ew.chain, ew.owner, ew.executor, usdc.address)
    assert receipt.status == 1
    assert await balance(ew, usdc.address, ew.owner.address) == usdc.units(250)
    await withdraw(ew.chain, ew.owner, ew.executor, weth.address, to=attacker.address, amount=weth.units(1) // 4)
    assert await balance(ew, weth.address, attacker.address) == weth.units(1) // 4
    assert await balance(ew, weth.address, ew.executor) == weth.units(1) - weth.units(1) // 4
    with pytest.raises(ExecutorError, match="no contract at executor address"):
        await withdraw(ew.chain, ew.owner, attacker.address, usdc.address)


async def _cli(*args: str) -> tuple[int, str, str]:
    env = {**os.environ, KEEPER_KEY_ENV: KEEPER_KEY}
    proc = await asyncio.create_subprocess_exec(*KEEPER, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert KEEPER_KEY.removeprefix("0x") not in (out + err).decode().lower()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_deploys_and_withdraws(ew, tmp_path):
    """`keeper executor deploy` deploys one owned by the configured signer and prints the line for
    the config; `keeper executor withdraw` sweeps a token to the signer (or --to)."""
    usdc = ew.token("USDC")
    cfg = tmp_path / "keeper.toml"
    cfg.write_text(config_text(ew.world))
    code, out, err = await _cli("executor", "deploy", "--config", str(cfg))
    assert code == 0, err
    assert out.startswith('executor = "0x')
    executor = out.split('"')[1]
    assert await owner_of(ew.chain, executor) == KEEPER_ADDRESS

    await mint(ew.d, usdc, executor, usdc.units(42))
    before = await balance(ew, usdc.address, KEEPER_ADDRESS)
    code, out, err = await _cli("executor", "withdraw", "--config", str(cfg), "--token", usdc.address,
                                "--executor", executor)
    assert code == 0, err
    assert await balance(ew, usdc.address, KEEPER_ADDRESS) - before == usdc.units(42)
    assert await balance(ew, usdc.address, executor) == 0
    assert f"withdrew {usdc.units(42)}" in out
    code, out, _ = await _cli("executor", "withdraw", "--config", str(cfg), "--token", usdc.address,
                              "--executor", executor)
    assert code == 0 and "holds no" in out  # nothing sent

    await mint(ew.d, usdc, executor, usdc.units(7))
    [to] = ew.world.take_accounts(1)
    code, _, err = await _cli("executor", "withdraw", "--config", str(cfg), "--token", usdc.address,
                              "--executor", executor, "--to", to)
    assert code == 0, err
    assert await balance(ew, usdc.address, to) == usdc.units(7)


async def test_cli_errors_name_the_problem(ew, tmp_path):
    usdc = ew.token("USDC")
    cfg = tmp_path / "keeper.toml"
    cfg.write_text(config_text(ew.world))
    code, _, err = await _cli("executor", "withdraw", "--config", str(cfg), "--token", usdc.address)
    assert code == 2 and "give --executor: the config names no executor" in err
    code, _, err = await _cli("executor", "withdraw", "--config", str(cfg), "--token", "USDC",
                              "--executor", ew.executor)
    assert code == 2 and "--token: 'USDC' is not an address" in err
    await mint(ew.d, usdc, ew.executor, 1)
    code, _, err = await _cli("executor", "withdraw", "--config", str(cfg), "--token", usdc.address,
                              "--executor", ew.executor)  # owned by the test's owner, not the config's signer
    assert code == 1 and f"owned by {ew.owner.address}, not by the signer {KEEPER_ADDRESS}" in err
