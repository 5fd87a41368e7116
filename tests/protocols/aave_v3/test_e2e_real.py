"""The keeper end to end on the real Aave V3 Pool (@aave/core-v3 1.19.3, v3.0 close-factor rules)."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.protocols.aave_v3.common import EModeParams, account_data, set_user_emode
from keeper_devnet.protocols.aave_v3.real import configure_emode
from keeper_devnet.tokens import set_price
from keeper_devnet.world import open_position

from keeper.abi import load
from tests.helpers.keeper import (
    Wallet,
    make_keeper,
    run_and_close,
    run_keeper,
    run_until_quiet,
    scan_rows,
    step,
)
from tests.protocols.aave_v3.helpers import drop_weth, open_scenario

E18 = 10**18
LIQUIDATION_TOPIC = load("aave_v3/AaveV3Pool").event("LiquidationCall").topic
ERC20_ABI = [{"type": "function", "name": "balanceOf", "stateMutability": "view",
              "inputs": [{"name": "a", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]}]


@pytest.fixture
async def world(real_world, snapshot):
    w = copy.deepcopy(real_world)  # accounts handed out in a test go back with the revert
    yield w






async def test_price_drop_liquidates_exactly_the_unhealthy_once(deployer, world, tmp_path):
    users = await open_scenario(deployer, world)
    keeper = await make_keeper(world, tmp_path)
    try:
        await step(keeper)
        assert keeper.recorder.outcomes == []  # all healthy before the drop
        await drop_weth(deployer, world)
        hf_before = {u: (await account_data(deployer, world.aave, u))[5] for u in users}
        usdc_debt = world.aave.extra["variable_debt"]["USDC"]
        debt_before = {u: await deployer.call(usdc_debt, ERC20_ABI, "balanceOf", u) for u in users}
        unhealthy = {u for u, hf in hf_before.items() if hf < E18}
        assert len(unhealthy) == 4  # the scenario is what the comments say
        wallet = await Wallet(deployer, world).start()
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    liquidated = [o["account"] for o in report["liquidations"]]
    assert sorted(liquidated) == sorted(unhealthy)  # each unhealthy user once, no healthy one
    for u in set(users) - unhealthy:
        assert (await account_data(deployer, world.aave, u))[5] == pytest.approx(hf_before[u], rel=1e-6)  # untouched (interest accrues by the second)
    # Close factor (v3.0): 50% of the reserve debt when 0.95 < HF < 1, all of it at HF <= 0.95.
    for o in report["liquidations"]:
        receipt = await deployer.w3.eth.get_transaction_receipt(o["tx_hash"])
        assert receipt["status"] == 1
        d = o["details"]
        hf = hf_before[o["account"]]
        coll_left, debt_left = (await account_data(deployer, world.aave, o["account"]))[:2]
        if hf <= 95 * 10**16:  # 100%: the whole debt, or every unit of collateral
            assert (d["clears_debt"] and debt_left == 0) or (coll_left == 0 and debt_left > 0)
        else:  # 50% of the reserve debt
            assert not d["clears_debt"] and debt_left > 0
            event = [lg for lg in receipt["logs"] if lg["topics"][0].hex() == LIQUIDATION_TOPIC[2:]][0]
            repaid = int.from_bytes(event["data"][:32], "big")
            assert repaid == d["debt_to_cover"]
            # 50% of the debt, unless the chosen collateral ran out first (all of it seized).
            sym = next(s for s, t in world.tokens.items() if t.address == d["collateral"])
            coll_gone = await deployer.call(world.aave.extra["a_tokens"][sym], ERC20_ABI, "balanceOf", o["account"]) == 0
            assert abs(repaid * 2 - debt_before[o["account"]]) <= 2 or (coll_gone and repaid * 2 < debt_before[o["account"]])
        # Realised profit within 0.5% of the prediction.
        assert o["realised_profit_usd"] == pytest.approx(o["predicted_profit_usd"], rel=0.005)
        assert o["predicted_profit_usd"] > 0
    # The realised figures agree with the wallet's balances measured independently (approvals' gas too).
    total_realised = sum(o["realised_profit_usd"] for o in report["liquidations"])
    assert await wallet.net_usd() == pytest.approx(total_realised, rel=0.005)


async def test_dry_run_sends_nothing_and_reports(deployer, world, tmp_path):
    users = await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    unhealthy = {u for u in users if (await account_data(deployer, world.aave, u))[5] < E18}
    nonce = await deployer.w3.eth.get_transaction_count(world.keeper_address)
    keeper = await run_keeper(world, tmp_path, mode="dry-run")
    report = keeper.recorder.report()
    assert await deployer.w3.eth.get_transaction_count(world.keeper_address) == nonce
    assert {o["account"] for o in report["dry_run"]} == unhealthy
    assert report["liquidations"] == []
    assert all(o["predicted_profit_usd"] > 0 and o["details"]["gas_simulated"] > 0 for o in report["dry_run"])
    for u in unhealthy:
        assert (await account_data(deployer, world.aave, u))[5] < E18  # nobody was liquidated


async def test_below_min_profit_is_skipped_with_reason(deployer, world, tmp_path):
    await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    nonce = await deployer.w3.eth.get_transaction_count(world.keeper_address)
    keeper = await run_keeper(world, tmp_path, min_profit_usd="1000000")
    report = keeper.recorder.report()
    assert len(report["skipped"]) == 4 and report["liquidations"] == []
    assert all("below min_profit_usd" in o["reason"] for o in report["skipped"])
    assert await deployer.w3.eth.get_transaction_count(world.keeper_address) == nonce


async def test_above_max_gas_price_is_skipped_with_reason(deployer, world, tmp_path):
    await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    keeper = await make_keeper(world, tmp_path, max_gas_price_gwei="5")
    await deployer.rpc("anvil_setNextBlockBaseFeePerGas", [hex(40 * 10**9)])
    await deployer.rpc("evm_mine", [])
    nonce = await deployer.w3.eth.get_transaction_count(world.keeper_address)
    await run_and_close(keeper)
    report = keeper.recorder.report()
    assert len(report["skipped"]) == 4
    assert all("above max_gas_price_gwei" in o["reason"] for o in report["skipped"])
    assert await deployer.w3.eth.get_transaction_count(world.keeper_address) == nonce


async def test_scan_lists_every_account_with_why(deployer, world, tmp_path):
    users = await open_scenario(deployer, world)
    await drop_weth(deployer, world)
    nonce = await deployer.w3.eth.get_transaction_count(world.keeper_address)
    rows = await scan_rows(world, tmp_path)
    assert await deployer.w3.eth.get_transaction_count(world.keeper_address) == nonce
    by = {r.account: r for r in rows}
    assert set(by) == set(users)
    for u in users:
        hf = (await account_data(deployer, world.aave, u))[5]
        r = by[u]
        assert r.liquidatable == (hf < E18)
        assert r.health == pytest.approx(hf / E18)
        assert r.why == ("liquidatable" if hf < E18 else "healthy")
        assert "/" in r.pair and r.expected_profit_usd is not None
    assert [r.liquidatable for r in rows] == sorted((r.liquidatable for r in rows), reverse=True)


async def test_a_blocks_liquidations_land_together(deployer, world, tmp_path):
    """With blocks mined on an interval (as on a real chain), every plan of the step is sent before
    any receipt is awaited: the approval and all liquidations are mined in one block."""
    users = await open_scenario(deployer, world)
    keeper = await make_keeper(world, tmp_path)
    try:
        await deployer.rpc("evm_setAutomine", [False])
        await deployer.rpc("evm_setIntervalMining", [1])
        await drop_weth(deployer, world)
        drop_block = await deployer.w3.eth.block_number
        await step(keeper)
    finally:
        await deployer.rpc("evm_setIntervalMining", [0])
        await deployer.rpc("evm_setAutomine", [True])
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    assert len(report["liquidations"]) == 4
    assert {o["block"] for o in report["liquidations"]} == {drop_block + 1}
    # Later plans were simulated after the earlier, not yet mined, sends (approval included once).
    for o in report["liquidations"]:
        assert o["realised_profit_usd"] == pytest.approx(o["predicted_profit_usd"], rel=0.005)
    for u in users:  # healthy again, or every unit of collateral taken (the 0.95 position)
        coll, _, _, _, _, hf = await account_data(deployer, world.aave, u)
        assert hf >= E18 or coll == 0


@pytest.mark.parametrize("bonus, threshold", [(10_300, 9_000), (10_800, 8_800)], ids=["bonus-3pc", "bonus-8pc"])
async def test_emode_user_liquidated_at_the_category_bonus(deployer, world, tmp_path, bonus, threshold):
    """v3.0 eMode on the real Pool: category 1 holds WETH and USDC (configurator setEModeCategory /
    setAssetEModeCategory: the reserve's bits 168-175) with a bonus below or above WETH's 5%. A user
    in it with WETH collateral is liquidated at the category's bonus; another in it with WBTC
    collateral (outside the category) at WBTC's own 6.5%. Collateral received exactly as planned,
    profit within 0.5%."""
    await configure_emode(deployer, world.aave, 1, EModeParams(8_500, threshold, bonus, collateral=("WETH", "USDC")))
    in_cat, outside = users = world.take_accounts(2)
    for u, coll, debt in ((in_cat, {"WETH": 10}, {"USDC": 25_000}), (outside, {"WBTC": 0.5}, {"USDC": 20_900})):
        await open_position(deployer, world, u, coll, {})
        await set_user_emode(deployer, world.aave, u, 1)
        await open_position(deployer, world, u, {}, debt)
    weth, wbtc = world.tokens["WETH"], world.tokens["WBTC"]
    await set_price(deployer, weth, 2_750 * 10**8)  # HF 0.990 (threshold 90%) / 0.968 (88%)
    await set_price(deployer, wbtc, 55_000 * 10**8)  # HF 0.987 at WBTC's 75%
    for u in users:
        assert 0.95 * E18 < (await account_data(deployer, world.aave, u))[5] < E18
    keeper = await run_keeper(world, tmp_path, until_quiet=True)
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == [] and report["skipped"] == []
    by: dict = {}
    for o in report["liquidations"]:  # the first of each (with an 8% bonus at 88%, HF is still < 1 after it)
        by.setdefault(o["account"], o)
    assert set(by) == set(users)
    want = {in_cat: bonus, outside: 10_650}
    for o in report["liquidations"]:
        assert (o["details"]["liquidation_bonus"], o["details"]["emode"]) == (want[o["account"]], 1)
        receipt = await deployer.w3.eth.get_transaction_receipt(o["tx_hash"])
        [lg] = [lg for lg in receipt["logs"] if lg["topics"][0].hex() == LIQUIDATION_TOPIC[2:]]
        ev = load("aave_v3/AaveV3Pool").event("LiquidationCall").decode(
            ["0x" + t.hex() for t in lg["topics"]], bytes(lg["data"]))
        assert ev["liquidatedCollateralAmount"] == int(o["details"]["collateral_received"])
        assert ev["debtToCover"] == o["details"]["debt_to_cover"]
        assert o["realised_profit_usd"] == pytest.approx(o["predicted_profit_usd"], rel=0.005)
    # 12,500 USDC (50%) at 2,750 with the category's bonus, 10% of the bonus part to the treasury
    # (v3.0: percentMul / percentDiv half up).
    base = 12_500 * 10**6 * 10**8 * 10**18 // (2_750 * 10**8 * 10**6)
    seized = (base * bonus + 5_000) // 10_000
    fee = ((seized - (seized * 10_000 + bonus // 2) // bonus) * 1_000 + 5_000) // 10_000
    assert by[in_cat]["details"]["debt_to_cover"] == 12_500 * 10**6
    assert int(by[in_cat]["details"]["collateral_received"]) == seized - fee
