"""The keeper end to end on the Aave v3.3 stand-in (devnet/keeper_devnet/protocols/aave_v3): the
v3.3 close-factor thresholds and the dust rule, which the real @aave/core-v3 1.19.3 Pool predates;
eMode as from v3.2 (category bonus from the collateral bitmap); the next plan after a simulation
refusal; bad debt burned into the reserves' deficits.

v3.3 (aave-dao/aave-v3-origin LiquidationLogic): 100% of a reserve's debt may be repaid when that
debt or the collateral is worth < 2,000 USD (or HF < 0.95); and a liquidation that clears neither
side must leave both worth >= 1,000 USD, else it reverts MustNotLeaveDust.
"""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.protocols.aave_v3.common import EModeParams, account_data, set_user_emode
from keeper_devnet.protocols.aave_v3.standin import configure_emode, pool_artifact
from keeper_devnet.tokens import set_price
from keeper_devnet.world import build_world, open_position

from keeper.abi import load
from keeper.errors import decode_revert
from tests.helpers.keeper import make_keeper, run_keeper, run_until_quiet

E18 = 10**18
USD = 10**8
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


# ---------------------------------------------------------------------------------------------
# eMode (v3.2+: the category's bonus for collateral in its collateral bitmap) and next plans

# Category 1: WETH at 90% / 93%, bonus 3% (below the reserve's 5%); category 2: WETH at 85% / 88%,
# bonus 8% (above). USDC and WBTC borrowable in both.
CAT_LOW = EModeParams(9_000, 9_300, 10_300, collateral=("WETH",), borrowable=("USDC", "WBTC"), label="low")
CAT_HIGH = EModeParams(8_500, 8_800, 10_800, collateral=("WETH",), borrowable=("USDC", "WBTC"), label="high")
# After WETH 3,000 -> 2,800: LOW has HF 0.984 on 4,340 USD of WETH against 3,000 USD of WBTC and
# 1,100 USD of USDC: WETH/WBTC is the best pair, and its 50% cap (2,050 USD) would leave 950 USD of
# WBTC debt, so the best plan leaves exactly 1,000 USD. HIGH has HF 0.978: 50% of 2,520 USDC.
EMODE_LOW = ({"WETH": 1.55}, {"WBTC": 0.05, "USDC": 1_100})
EMODE_HIGH = ({"WETH": 1}, {"USDC": 2_520})


async def emode_users(deployer, world, *positions):
    """Categories 1 and 2 configured; a user per (category, position) entered in it, then borrowing."""
    await configure_emode(deployer, world.aave, 1, CAT_LOW)
    await configure_emode(deployer, world.aave, 2, CAT_HIGH)
    users = world.take_accounts(len(positions))
    for u, (cat, (coll, debt)) in zip(users, positions):
        await open_position(deployer, world, u, coll, {})
        await set_user_emode(deployer, world.aave, u, cat)
        await open_position(deployer, world, u, {}, debt)
    return users


async def test_emode_bonus_below_and_above_the_reserves_and_a_dust_refusal_then_the_next_plan(
        deployer, world, tmp_path):
    """Two eMode borrowers liquidated at their category's bonus (3% and 8%; WETH's own is 5%), the
    profit predicted within 0.5% of the realised. The keeper's view lags one block behind a WBTC
    price update (-0.00003%): its best plan for LOW, leaving exactly 1,000 USD of WBTC debt at the
    old price, leaves 999.9996 USD at the new one and simulation refuses it (MustNotLeaveDust); the
    adapter's next plan keeps a 1% margin and goes through. The refusal is recorded once."""
    low, high = await emode_users(deployer, world, (1, EMODE_LOW), (2, EMODE_HIGH))
    weth, wbtc = world.tokens["WETH"], world.tokens["WBTC"]
    await set_price(deployer, weth, 2_800 * USD)
    stale = await deployer.w3.eth.block_number
    hf = {u: (await account_data(deployer, world.aave, u))[5] for u in (low, high)}
    assert all(0.95 * E18 < h < E18 for h in hf.values())
    await set_price(deployer, wbtc, 5_999_998_000_000)  # 59,999.98 USD, mined after `stale`
    keeper = await make_keeper(world, tmp_path, rules="v3.3")
    try:
        await keeper.step(stale)  # reads the accounts and prices at `stale`, simulates on the latest
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    by = {o["account"]: o for o in report["liquidations"]}
    assert set(by) == {low, high}
    events = await liquidation_events(deployer, report)
    for u, bonus in ((low, 10_300), (high, 10_800)):
        o = by[u]
        assert (o["details"]["liquidation_bonus"], o["details"]["emode"]) == (bonus, 1 if u == low else 2)
        assert o["realised_profit_usd"] == pytest.approx(o["predicted_profit_usd"], rel=0.005)
        assert o["predicted_profit_usd"] > 0
        assert events[u]["collateralAsset"] == weth.address
        planned = int(o["details"]["collateral_received"])
        assert events[u]["liquidatedCollateralAmount"] == pytest.approx(planned, rel=1e-6)
    # HIGH: 1,260 USDC (50%) for 1,260 x 1.08 / 2,800 WETH (less 10% of the bonus part): exact.
    assert events[high]["debtToCover"] == 1_260 * 10**6
    assert events[high]["liquidatedCollateralAmount"] == int(by[high]["details"]["collateral_received"])
    # LOW: the refused plan, then the next one (1% over the dust limit) on the same pair.
    refusals = [o for o in report["skipped"] if o["account"] == low]
    assert len(refusals) == 1 and "MustNotLeaveDust" in refusals[0]["reason"], refusals
    assert refusals[0]["label"] == by[low]["label"] == "WETH/WBTC"
    assert by[low]["details"]["dust_margin_bps"] == 100
    left_usd = await debt_of(deployer, world, low, "WBTC") * wbtc.price / 10**wbtc.decimals / 1e8
    assert 1_009.9 < left_usd < 1_010.1
    assert (await account_data(deployer, world.aave, low))[5] > E18


async def test_a_refusal_is_recorded_once_while_the_account_is_unchanged(deployer, world, tmp_path):
    """The keeper's view stays on a block before WBTC fell 40% (and WETH to 1,950: LOW is still
    liquidatable): its plans on WETH/WBTC leave 1,000 USD of WBTC debt at the old price, 600 at
    the new one: simulation refuses them (MustNotLeaveDust), with 1% and 10% margins too; the 50%
    margin is below min_profit_usd. Step after step on that state, the refused plans are not
    tried again: one refusal on record, one skip, nothing sent."""
    (low,) = await emode_users(deployer, world, (1, EMODE_LOW))
    weth, wbtc = world.tokens["WETH"], world.tokens["WBTC"]
    await set_price(deployer, weth, 2_800 * USD)
    stale = await deployer.w3.eth.block_number
    await set_price(deployer, wbtc, 36_000 * USD)
    await set_price(deployer, weth, 1_950 * USD)
    assert 0.95 * E18 < (await account_data(deployer, world.aave, low))[5] < E18
    nonce = await deployer.w3.eth.get_transaction_count(world.keeper_address)
    keeper = await make_keeper(world, tmp_path, rules="v3.3", min_profit_usd="45")
    try:
        for _ in range(3):
            await keeper.step(stale)
    finally:
        await keeper.close()
    records = [o for o in keeper.recorder.report()["skipped"] if o["account"] == low]
    assert [r["label"] for r in records] == ["WETH/WBTC", "WETH/WBTC"], records
    assert "MustNotLeaveDust" in records[0]["reason"] and "below min_profit_usd" in records[1]["reason"], records
    assert await deployer.w3.eth.get_transaction_count(world.keeper_address) == nonce


async def test_the_last_collateral_taken_burns_the_rest_of_the_debt_into_deficits(deployer, world, tmp_path):
    """v3.3 bad debt through the keeper: 0.1 WBTC (3,000 USD after a crash) against 3,500 USDC and
    0.2 WETH of debt. The best plan takes all the WBTC for what it covers (3,000 / 1.065 USDC,
    rounded up); the Pool burns the rest of the USDC debt and all the WETH debt, and books them as
    the reserves' deficits."""
    (user,) = world.take_accounts(1)
    await open_position(deployer, world, user, {"WBTC": 0.1}, {"USDC": 3_500, "WETH": 0.2})
    wbtc, usdc, weth = (world.tokens[s] for s in ("WBTC", "USDC", "WETH"))
    await set_price(deployer, wbtc, 30_000 * USD)
    abi = (await pool_artifact()).abi
    deficit = {s: await deployer.call(world.aave.pool, abi, "getReserveDeficit", t.address)
               for s, t in (("USDC", usdc), ("WETH", weth))}
    keeper = await run_keeper(world, tmp_path, rules="v3.3", until_quiet=True)
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    [o] = report["liquidations"]
    d = o["details"]
    assert (o["label"], d["leaves_bad_debt"]) == ("WBTC/USDC", True)
    repaid = -(-3_000 * 10**6 * 10_000 // 10_650)  # percentDivCeil
    assert (await liquidation_events(deployer, report))[user]["debtToCover"] == d["debt_to_cover"] == repaid
    assert o["realised_profit_usd"] == pytest.approx(o["predicted_profit_usd"], rel=0.005)
    assert await deployer.call(world.aave.pool, abi, "getReserveDeficit", usdc.address) - deficit["USDC"] \
        == 3_500 * 10**6 - repaid
    assert await deployer.call(world.aave.pool, abi, "getReserveDeficit", weth.address) - deficit["WETH"] \
        == 2 * 10**17
    assert await account_data(deployer, world.aave, user) == (0, 0, 0, 0, 0, 2**256 - 1)
