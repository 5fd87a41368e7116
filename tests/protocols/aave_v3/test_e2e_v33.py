"""The keeper end to end on the Aave v3.3 stand-in (contracts/aave_v33): the v3.3 close-factor
thresholds and the dust rule, which the real @aave/core-v3 1.19.3 Pool predates.

v3.3 (aave-dao/aave-v3-origin LiquidationLogic): 100% of a reserve's debt may be repaid when that
debt or the collateral is worth < 2,000 USD (or HF < 0.95); and a liquidation that clears neither
side must leave both worth >= 1,000 USD, else it reverts MustNotLeaveDust.
"""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.protocols.aave_v3.common import account_data
from keeper_devnet.tokens import set_price
from keeper_devnet.world import build_world, open_position

from keeper.abi import load
from keeper.errors import decode_revert
from tests.helpers.keeper import run_keeper

E18 = 10**18
POOL = load("aave_v3/AaveV3Pool")
ERC20_ABI = [{"type": "function", "name": "balanceOf", "stateMutability": "view",
              "inputs": [{"name": "a", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]}]
# After a 30% WETH drop ($3,000 -> $2,100; WETH LT 82.5%):
SMALL = ({"WETH": 1}, {"USDC": 1_786})  # HF 0.970, debt < $2,000: v3.3 takes 100% (v3.0: 50%)
# HF 0.970 on $4,820 of WETH against $3,000 WBTC + $1,100 USDC. WBTC/WETH is the best pair, but its
# 50% cap ($2,050) would leave $950 of WBTC debt: dust. The keeper must repay less (<= $2,000).
DUST = ({"WETH": 2.295}, {"WBTC": 0.05, "USDC": 1_100})
HEALTHY = ({"WETH": 10}, {"USDC": 10_000})  # HF 1.73 after the drop


@pytest.fixture(scope="module")
async def standin_world(deployer):
    return await build_world(deployer, aave="standin")


@pytest.fixture
async def world(standin_world, snapshot):
    yield copy.deepcopy(standin_world)


async def debt_of(deployer, world, user, sym):
    return await deployer.call(world.aave.extra["variable_debt"][sym], ERC20_ABI, "balanceOf", user)


async def liquidation_events(deployer, report):
    out = {}
    for o in report["liquidations"]:
        receipt = await deployer.w3.eth.get_transaction_receipt(o["tx_hash"])
        assert receipt["status"] == 1
        logs = [lg for lg in receipt["logs"] if "0x" + lg["topics"][0].hex() == POOL.event("LiquidationCall").topic]
        assert len(logs) == 1
        out[o["account"]] = POOL.event("LiquidationCall").decode(
            ["0x" + t.hex() for t in logs[0]["topics"]], bytes(logs[0]["data"]))
    return out


async def test_v33_close_factor_and_dust_rule_through_the_keeper(deployer, world, tmp_path):
    small, dust, healthy = users = world.take_accounts(3)
    for u, (c, d) in zip(users, (SMALL, DUST, HEALTHY)):
        await open_position(deployer, world, u, c, d)
    weth, wbtc, usdc = (world.tokens[s] for s in ("WETH", "WBTC", "USDC"))
    await set_price(deployer, weth, weth.price * 7 // 10)
    hf = {u: (await account_data(deployer, world.aave, u))[5] for u in users}
    assert 0.95 * E18 < hf[small] < E18 and 0.95 * E18 < hf[dust] < E18 and hf[healthy] > E18

    # The dust case is real: the 50% cap on the WBTC debt reverts MustNotLeaveDust on the stand-in.
    wbtc_debt = await debt_of(deployer, world, dust, "WBTC")
    total_debt_base = (await account_data(deployer, world.aave, dust))[1]
    cap = (total_debt_base // 2) * 10**wbtc.decimals // wbtc.price
    assert cap < wbtc_debt
    call = POOL.fn("liquidationCall").encode(weth.address, wbtc.address, dust, cap, False)
    with pytest.raises(Exception) as err:
        await deployer.w3.eth.call({"from": world.keeper_address, "to": world.aave.pool, "data": call})
    assert "MustNotLeaveDust" in decode_revert(getattr(err.value, "data", None), str(err.value))

    keeper = await run_keeper(world, tmp_path, rules="v3.3", until_quiet=True)
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    assert sorted(o["account"] for o in report["liquidations"]) == sorted([small, dust])
    events = await liquidation_events(deployer, report)

    # Under $2,000 of debt the whole debt goes in one call (v3.0 would have allowed half).
    assert events[small]["debtToCover"] > (1_786 * 10**6) * 99 // 100
    assert await debt_of(deployer, world, small, "USDC") == 0

    # Dust: the keeper repaid WBTC below the cap, leaving >= $1,000 of WBTC debt and of collateral.
    ev = events[dust]
    assert ev["debtAsset"] == wbtc.address and ev["collateralAsset"] == weth.address
    assert 0 < ev["debtToCover"] < cap
    left_debt_usd = (await debt_of(deployer, world, dust, "WBTC")) * wbtc.price // 10**wbtc.decimals
    left_coll_usd = (await deployer.call(world.aave.extra["a_tokens"]["WETH"], ERC20_ABI, "balanceOf", dust)
                     * weth.price // E18)
    assert left_debt_usd >= 1_000 * 10**8 and left_coll_usd >= 1_000 * 10**8
    # ... and close to the largest valid amount: within $10 of leaving exactly $1,000.
    assert left_debt_usd < 1_010 * 10**8
    assert (await account_data(deployer, world.aave, dust))[5] > E18

    for o in report["liquidations"]:
        assert o["details"]["rules"] == "v3.3"
        assert o["realised_profit_usd"] == pytest.approx(o["predicted_profit_usd"], rel=0.005)
    assert (await account_data(deployer, world.aave, healthy))[5] == pytest.approx(hf[healthy], rel=1e-6)
    del usdc
