"""A liquidation that reverts on chain: the keeper simulates it at a price that makes the borrower
liquidatable, and before its transactions are mined a competitor's transaction (with a higher tip,
so first in the same block) puts the price back. The liquidation is mined with status 0; the keeper
records it as reverted, with its gas used and the gas paid as a loss; `keeper demo` given such a
report exits with status 1."""
from __future__ import annotations

import asyncio
import copy
import json
import sys

import pytest
from keeper_devnet.protocols.aave_v3.common import account_data
from keeper_devnet.tokens import feed_artifact
from keeper_devnet.world import KEEPER_ADDRESS, open_position

from tests.helpers.keeper import make_keeper
from tests.protocols.aave_v3.helpers import drop_weth

GWEI = 10**9


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


async def pending_count(d, address: str) -> int:
    return await d.w3.eth.get_transaction_count(address, "pending") - await d.w3.eth.get_transaction_count(address)


async def competitor_restores_price(d, world, price: int) -> str:
    """The feed's owner puts ``price`` back with a 100 gwei tip (sent, not mined)."""
    weth = world.tokens["WETH"]
    feed = d.at(weth.feed, (await feed_artifact()).abi)
    tx = {"from": d.sender, "to": weth.feed, "data": feed.encode_abi("updateAnswer", [price]), "gas": 500_000,
          "maxFeePerGas": 300 * GWEI, "maxPriorityFeePerGas": 100 * GWEI}
    return (await d.w3.eth.send_transaction(tx)).to_0x_hex()


async def run_reverted_liquidation(deployer, world, tmp_path):
    """The keeper's step on a liquidatable borrower, its transactions mined in one block after the
    competitor's; returns (keeper, borrower, competitor tx hash)."""
    [user] = world.take_accounts(1)
    await open_position(deployer, world, user, {"WETH": 10}, {"USDC": 19_000})
    price = world.tokens["WETH"].price
    await drop_weth(deployer, world)
    assert (await account_data(deployer, world.aave, user))[5] < 10**18
    keeper = await make_keeper(world, tmp_path)
    await deployer.rpc("evm_setAutomine", [False])
    try:
        step = asyncio.create_task(keeper.step(await keeper.chain.block_number()))
        for _ in range(600):  # the keeper simulated and sent its approval and liquidation
            if await pending_count(deployer, KEEPER_ADDRESS) == 2 or step.done():
                break
            await asyncio.sleep(0.05)
        assert await pending_count(deployer, KEEPER_ADDRESS) == 2, step.done() and step.result()
        competitor = await competitor_restores_price(deployer, world, price)
        await deployer.rpc("evm_mine", [])
        await asyncio.wait_for(step, 60)  # the step hands its plans over and returns
        await keeper.settle(60)  # the transaction manager records them once mined
    finally:
        await deployer.rpc("evm_setAutomine", [True])
        await keeper.close()
    return keeper, user, competitor


async def test_liquidation_reverted_on_chain_is_recorded_with_its_gas(deployer, world, tmp_path):
    debt_token = world.aave.extra["variable_debt"]["USDC"]
    keeper, user, competitor = await run_reverted_liquidation(deployer, world, tmp_path)
    report = keeper.recorder.report()
    assert report["liquidations"] == [] and report["failed"] == []
    [rev] = report["reverted"]
    assert rev["account"] == user and rev["reason"].startswith("liquidationCall") and "reverted on chain" in rev["reason"]
    receipt = await deployer.w3.eth.get_transaction_receipt(rev["tx_hash"])
    first = await deployer.w3.eth.get_transaction_receipt(competitor)
    assert receipt["status"] == 0 and first["status"] == 1
    assert first["blockNumber"] == receipt["blockNumber"] == rev["block"]
    assert first["transactionIndex"] < receipt["transactionIndex"]  # the competitor went first
    assert receipt["from"] == KEEPER_ADDRESS and receipt["to"] == world.aave.pool
    # Its gas is counted: the gas the node says it used, and what it cost, at the step's ETH price.
    assert rev["gas_used"] == receipt["gasUsed"] > 21_000
    paid = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert rev["details"]["gas_paid_wei"] == paid > 0
    assert round(rev["realised_profit_usd"] * 10**8) == -(paid * world.tokens["WETH"].price // 10**18)
    assert rev["predicted_profit_usd"] > 0
    # Nothing was liquidated: the borrower's debt is untouched, healthy at the restored price.
    assert (await account_data(deployer, world.aave, user))[5] > 10**18
    assert await deployer.call(debt_token, [{"type": "function", "name": "balanceOf", "stateMutability": "view",
                                             "inputs": [{"name": "a", "type": "address"}],
                                             "outputs": [{"name": "", "type": "uint256"}]}], "balanceOf", user) >= 19_000 * 10**6

    # `keeper demo` exits 1 when its report holds a reverted liquidation (here: this run's report).
    demo_report = {**report, "contracts": {"aave_v3": world.aave.code}, "positions": 1, "execution": "inventory",
                   "rewards_credited_before_claim": {}, "still_liquidatable": []}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(demo_report))
    for flags in (["--json"], []):
        code, out = await cli_demo_with_report(path, flags)
        assert code == 1, out
        if flags:
            assert json.loads(out)["reverted"] == report["reverted"]
        else:
            assert "1 reverted" in out and rev["tx_hash"][:12] in out


async def cli_demo_with_report(path, flags: list[str]) -> tuple[int, str]:
    """`keeper demo [flags]` in a separate process whose demo run returns the report at ``path``."""
    script = ("import json, sys\n"
              "import keeper_devnet.demo as demo\n"
              "from keeper.cli import main\n"
              f"report = json.load(open({str(path)!r}))\n"
              "async def run_demo(**_):\n"
              "    return report\n"
              "demo.run_demo = run_demo\n"
              f"sys.exit(main(['demo', *{flags!r}]))\n")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode() + err.decode()[-2000:]
