"""Gearbox V3 full liquidations in inventory mode, on the real contracts: the keeper plans the best
partial liquidation and the full one (liquidateCreditAccount adding the underlying the credit
manager keeps and withdrawing every collateral to the wallet) and sends the more profitable. An
account with bad debt and one whose partial liquidation would break the credit manager's minimum
debt (no partial size is allowed) are fully liquidated; where both are possible the choice is the
one the test computes as more profitable from its own reads. The loss policy is asked first: a
liquidation with loss it refuses is reported, never sent."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.protocols.gearbox_v3.world import (
    account_state,
    add_gearbox_to_world,
    facade_events,
    math_account,
    open_credit_account,
)
from keeper_devnet.tokens import balance_of, set_price
from keeper_devnet.world import KEEPER_ADDRESS, World, bare_world

from keeper.protocols.gearbox_v3 import maths as gm
from tests.helpers.keeper import Wallet, run_until_quiet
from tests.protocols.gearbox_v3.helpers import gearbox, keeper_for

KEEPER_USDC = 100_000
BAD_DEBT = 5  # GEARBOX_DEMO_POSITIONS: value 10,500 < debt 12,500 after the drop
BOTH = (0, 1, 2, 3)  # a partial and a full liquidation are both possible
# 0.6 WETH against 1,100 USDC: after the drop HF 0.974; restoring HF >= 1 needs ~290 USDC repaid,
# which would leave the debt under minDebt (1,000): only a full liquidation is possible.
MIN_DEBT_CASE = ({"WETH": 0.6}, 1_100, {"WETH": 2_000})


@pytest.fixture(scope="module")
async def gb_world(deployer) -> World:
    world = await bare_world(deployer)
    dep = await add_gearbox_to_world(deployer, world, keeper_usdc=KEEPER_USDC, pyth_weth=False)
    (user,) = world.take_accounts(1)
    collateral, debt, quotas = MIN_DEBT_CASE
    world.extra["min_debt_account"] = await open_credit_account(deployer, dep, user, debt, collateral, quotas)
    return world


@pytest.fixture
async def world(gb_world, snapshot):
    yield copy.deepcopy(gb_world)


async def drop_weth(d, world) -> None:
    weth = world.tokens["WETH"]
    await set_price(d, weth, weth.price * 7 // 10)


def full_of(o: dict) -> bool:
    return o["details"]["liquidation"] == "full"


async def test_bad_debt_and_min_debt_accounts_are_fully_liquidated_and_the_choice_pays_most(deployer, world,
                                                                                               tmp_path):
    d, dep = deployer, gearbox(world)
    cas = world.extra["gearbox_accounts"]
    small = world.extra["min_debt_account"]
    await drop_weth(d, world)
    # The test's own view of each account (read call by call), and both liquidations' profits.
    wallet_units = KEEPER_USDC * 10**6
    choice: dict[str, tuple[bool, gm.Full]] = {}
    for ca in [*(cas[i] for i in (*BOTH, BAD_DEBT)), small]:
        acc = await math_account(d, dep, ca)
        full = gm.full_liquidation(acc, (await account_state(d, dep, ca)).total_value)
        partial = gm.best_partial(acc, wallet_units, 10)
        if ca in (cas[BAD_DEBT], small):
            assert partial is None and gm.best_partial(acc, 10**18, 10) is None  # no partial size at all
        else:
            assert partial is not None
        choice[ca] = (partial is None or full.profit_usd > partial.profit_usd, full)
    assert choice[cas[BAD_DEBT]][1].bad_debt and not choice[small][1].bad_debt
    wallet = await Wallet(d, world).start()
    keeper = await keeper_for(world, tmp_path)
    try:
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == [] and report["skipped"] == []
    liqs = {o["account"]: o for o in report["liquidations"]}
    assert set(liqs) == set(choice)
    for ca, (full_pays_more, full) in choice.items():
        o = liqs[ca]
        assert full_of(o) == full_pays_more, (ca, o["label"])
        (h,) = o["details"]["tx_hashes"]
        rc = await d.w3.eth.get_transaction_receipt(h)
        st = await account_state(d, dep, ca)
        assert not st.liquidatable
        assert o["realised_profit_usd"] == pytest.approx(o["predicted_profit_usd"], rel=0.01)
        if not full_pays_more:
            continue
        (ev,) = facade_events(d, dep, rc, "LiquidateCreditAccount")
        assert (ev["creditAccount"], ev["liquidator"], ev["to"]) == (ca, KEEPER_ADDRESS, KEEPER_ADDRESS)
        assert st.debt == 0
        det = o["details"]
        assert (int(det["added"]), int(det["returned"]), det["bad_debt"]) == (full.add, full.returned, full.bad_debt)
        assert o["label"].startswith("full ")
    # Everything the wallet gained, valued independently, is what the records say.
    assert await wallet.net_usd() == pytest.approx(sum(o["realised_profit_usd"] for o in liqs.values()), rel=0.01)
    assert await balance_of(d, world.tokens["WETH"], KEEPER_ADDRESS) > 0  # inventory mode keeps the collateral


async def test_the_loss_policy_is_asked_before_a_liquidation_with_loss(deployer, world, tmp_path):
    """AliasedLossPolicyV3 in Permissioned mode: only LOSS_LIQUIDATOR may take a loss. Without the
    role the bad-debt account is reported (nothing sent for it); with it, it is liquidated."""
    d, dep = deployer, gearbox(world)
    bad = world.extra["gearbox_accounts"][BAD_DEBT]
    await d.transact(dep.loss_policy, dep.abis["AliasedLossPolicyV3"], "setAccessMode", 1)  # Permissioned
    await drop_weth(d, world)
    keeper = await keeper_for(world, tmp_path)
    try:
        await run_until_quiet(keeper)
        report = keeper.recorder.report()
        (skip,) = [s for s in report["skipped"] if s["account"] == bad]
        assert skip["reason_code"] == "loss_policy" and KEEPER_ADDRESS in skip["reason"]
        assert bad not in {o["account"] for o in report["liquidations"]}
        assert (await account_state(d, dep, bad)).liquidatable
        await d.transact(dep.gov, dep.abis["GovStandIn"], "grantRole", b"LOSS_LIQUIDATOR".ljust(32, b"\0"),
                         KEEPER_ADDRESS)
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    (o,) = [o for o in keeper.recorder.report()["liquidations"] if o["account"] == bad]
    assert full_of(o) and o["details"]["bad_debt"] and int(o["details"]["loss"]) > 0
    assert (await account_state(d, dep, bad)).debt == 0
