"""Aave V3 in flash mode against the real Pool: a keeper wallet holding no debt token liquidates
through its LiquidationExecutor, which borrows the debt asset from the cheapest flash source
(Morpho Blue's fee-free flashLoan when Morpho holds the token, else the Pool's own flashLoanSimple
with FLASHLOAN_PREMIUM_TOTAL), calls liquidationCall, sells the collateral on Uniswap V3 and repays.
The owner's balance change in the debt token is the profit, within 1% of the prediction."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.protocols.aave_v3.common import account_data
from keeper_devnet.tokens import mint
from keeper_devnet.world import KEEPER_ADDRESS, open_position

from keeper.abi import load
from tests.helpers.flash import check_flash_outcome, crash_weth, flash_keeper, flash_world, wallet_tokens
from tests.helpers.keeper import Wallet, make_keeper, run_until_quiet, step

E18 = 10**18
# (collateral, debt) in whole tokens; after WETH's crash to $2,100 both are at HF 0.866.
POSITIONS = [({"WETH": 10}, {"USDC": 20_000}), ({"WETH": 15}, {"WBTC": 0.5})]


@pytest.fixture(scope="module")
async def flash_base(deployer):
    world = await flash_world(deployer, ("aave_v3", "morpho_blue"), pool_usd=10_000_000)
    users = world.take_accounts(len(POSITIONS))
    for u, (c, debt) in zip(users, POSITIONS):
        await open_position(deployer, world, u, c, debt)
    world.extra["aave_borrowers"] = users
    return world


@pytest.fixture
async def world(flash_base, snapshot):
    yield copy.deepcopy(flash_base)


async def run(d, world, tmp_path, **cfg) -> dict:
    await crash_weth(d, world)
    assert set((await wallet_tokens(d, world)).values()) == {0}  # no USDC, no WBTC: ETH for gas only
    wallet = await Wallet(d, world).start()
    keeper = await flash_keeper(world, tmp_path, ["aave_v3"], **cfg)
    try:
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    liqs = {o["account"]: o for o in report["liquidations"]}
    assert set(liqs) == set(world.extra["aave_borrowers"])
    for u, o in liqs.items():
        token, _, _ = await check_flash_outcome(d, world, o)
        assert token == o["details"]["debt"]
        assert (await account_data(d, world.aave, u))[5] >= E18  # healthy again (or no debt left)
    assert await wallet.net_usd() == pytest.approx(sum(o["realised_profit_usd"] for o in liqs.values()), rel=0.01)
    return liqs


async def test_morpho_lends_for_free(deployer, world, tmp_path):
    liqs = await run(deployer, world, tmp_path)
    for o in liqs.values():
        f = o["details"]["flash"]
        assert (f["lender"], f["lender_address"], f["flash_fee"]) == ("morpho_blue", world.extra["morpho"].morpho, 0)


async def test_without_morpho_the_pool_lends_at_its_premium(deployer, world, tmp_path):
    fn = load("aave_v3/AaveV3Pool").fn("FLASHLOAN_PREMIUM_TOTAL")
    premium = fn.decode(bytes(await deployer.w3.eth.call({"to": world.aave.pool, "data": "0x" + fn.encode().hex()})))
    assert premium > 0
    liqs = await run(deployer, world, tmp_path, swap={"morpho": False})
    for o in liqs.values():
        f = o["details"]["flash"]
        assert (f["lender"], f["lender_address"]) == ("aave_v3", world.aave.pool)
        borrowed = int(f["borrowed"])
        assert int(f["flash_fee"]) == (borrowed * premium + 5_000) // 10_000 > 0  # percentMul, half up


async def test_inventory_mode_with_too_little_says_the_wallet_lacks_funds(deployer, world, tmp_path):
    """Inventory mode with 10 USDC in the wallet: the plan the wallet can pay earns less than gas, and
    the skip names the token, what the wallet holds and what the whole liquidation needs."""
    d = deployer
    await crash_weth(d, world)
    usdc = world.tokens["USDC"]
    await mint(d, usdc, KEEPER_ADDRESS, usdc.units(10))
    keeper = await make_keeper(world, tmp_path, execution="inventory", protocols=["aave_v3"])
    try:
        await step(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["liquidations"] == [] and report["reverted"] == []
    skipped = {s["account"]: s for s in report["skipped"]}
    s = skipped[world.extra["aave_borrowers"][0]]  # 20,000 USDC of debt, close factor 100%
    assert s["reason_code"] == "no_inventory"
    assert s["reason"].startswith("wallet holds 10.00 USDC, needs 20,02"), s["reason"]  # the debt + a margin
    assert "the part it can pay is too small" in s["reason"]
