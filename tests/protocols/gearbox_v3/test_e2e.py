"""The keeper end to end on Gearbox V3 (the real @gearbox-protocol/core-v3 contracts): partial
liquidations of the demo credit accounts after a WETH drop, with the token and amount that pay most;
everything asserted on chain (events, balances, the credit manager's own views)."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.protocols.gearbox_v3.world import (
    account_state,
    add_gearbox_to_world,
    facade_events,
    liquidate_fully,
    math_account,
)
from keeper_devnet.tokens import balance_of, set_price
from keeper_devnet.world import KEEPER_ADDRESS, World, bare_world

from keeper.abi import load
from keeper.protocols.gearbox_v3 import maths as gm
from keeper.protocols.gearbox_v3.adapter import FULL_ONLY
from tests.helpers.keeper import Wallet, make_keeper, run_and_close, run_until_quiet, step
from tests.protocols.gearbox_v3.helpers import gearbox, keeper_for

E18 = 10**18
KEEPER_USDC = 100_000
# GEARBOX_DEMO_POSITIONS after a 30% WETH drop: partial liquidations and the token each should
# seize (index 1: only all its WBTC restores HF >= 1; index 2: WBTC's quota binds), the healthy
# account, and the one with bad debt (full liquidation only).
PARTIAL = {0: "WETH", 1: "WBTC", 2: "WBTC", 3: "WETH"}
HEALTHY, BAD_DEBT = 4, 5
# Most tests here are about partial liquidations: the keeper plans them alone (full_liquidation =
# false); full liquidations and the choice between both are in test_full.py and test_flash.py.
PARTIAL_ONLY = {"full_liquidation": False}


@pytest.fixture(scope="module")
async def gb_world(deployer) -> World:
    """Multicall3, fresh tokens, Gearbox V3 with the demo accounts and a keeper holding USDC,
    deployed once for the module (each test then runs inside a snapshot)."""
    world = await bare_world(deployer)
    await add_gearbox_to_world(deployer, world, keeper_usdc=KEEPER_USDC, pyth_weth=False)  # push feeds
    return world


@pytest.fixture
async def world(gb_world, snapshot):
    yield copy.deepcopy(gb_world)




def accounts(world) -> list[str]:
    return world.extra["gearbox_accounts"]




async def drop_weth(d, world, bps=3_000):
    weth = world.tokens["WETH"]
    await set_price(d, weth, weth.price * (10_000 - bps) // 10_000)


async def nonce(d) -> int:
    return await d.w3.eth.get_transaction_count(KEEPER_ADDRESS)


async def holdings(d, world, ca) -> tuple[int, ...]:
    return tuple([await balance_of(d, t, ca) for t in world.tokens.values()])


async def test_price_drop_partially_liquidates_with_the_best_plan(deployer, world, tmp_path, capsys):
    d, dep, cas = deployer, gearbox(world), accounts(world)
    keeper = await keeper_for(world, tmp_path, **PARTIAL_ONLY)
    try:
        n0 = await nonce(d)
        await step(keeper)
        assert keeper.recorder.outcomes == [] and await nonce(d) == n0  # all healthy before the drop
        await drop_weth(d, world)
        liquidatable = [i for i, ca in enumerate(cas) if (await account_state(d, dep, ca)).liquidatable]
        assert liquidatable == [*PARTIAL, BAD_DEBT]  # the scenario is what gearbox.py says
        # The best plan for each account, from the chain read by another path (devnet helpers).
        expected = {}
        for i in PARTIAL:
            acc = await math_account(d, dep, cas[i])
            expected[i] = gm.best_partial(acc, KEEPER_USDC * 10**6, 10)
            assert expected[i].token == world.tokens[PARTIAL[i]].address
            for t in acc.holdings:  # no other token pays more
                other = gm.best_partial_for(acc, t, KEEPER_USDC * 10**6, 10) if t != acc.underlying else None
                assert other is None or other.profit_usd <= expected[i].profit_usd
        untouched = {i: await holdings(d, world, cas[i]) for i in (HEALTHY, BAD_DEBT)}
        wallet = await Wallet(d, world).start()
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == [] and report["dry_run"] == []
    (skipped,) = report["skipped"]
    assert skipped["account"] == cas[BAD_DEBT] and skipped["reason"] == FULL_ONLY
    liqs = {o["account"]: o for o in report["liquidations"]}
    assert set(liqs) == {cas[i] for i in PARTIAL}
    assert await nonce(d) == n0 + 1 + len(PARTIAL)  # one approval (to the credit manager), then the liquidations
    usdc = dep.underlying
    allowance = load("ERC20").fn("allowance")
    data = "0x" + allowance.encode(KEEPER_ADDRESS, dep.credit_manager).hex()
    raw = await d.w3.eth.call({"to": usdc.address, "data": data})
    assert allowance.decode(raw) > 0  # the engine approved the credit manager, which pulls the USDC
    figures = []
    for i, plan in expected.items():
        o = liqs[cas[i]]
        (h,) = o["details"]["tx_hashes"]
        rc = await d.w3.eth.get_transaction_receipt(h)
        assert rc["status"] == 1 and rc["to"] == dep.credit_facade
        (ev,) = facade_events(d, dep, rc, "PartiallyLiquidateCreditAccount")
        assert ev["creditAccount"] == cas[i] and ev["liquidator"] == KEEPER_ADDRESS
        assert ev["token"] == plan.token == o["details"]["token"]
        # The amount planned from the keeper's mirror equals the one computed here from the same block.
        assert int(o["details"]["repaid_amount"]) == plan.amount
        assert ev["seizedCollateral"] == plan.seized == int(o["details"]["seized"])
        assert (ev["repaidDebt"], ev["fee"]) == (plan.repaid, plan.fee)
        after = await account_state(d, dep, cas[i])
        assert not after.liquidatable and after.hf >= 1 and after.debt >= dep.min_debt
        assert o["realised_profit_usd"] == pytest.approx(o["predicted_profit_usd"], rel=0.005)
        assert o["predicted_profit_usd"] > 0
        figures.append((i, o["label"], plan.amount / 1e6, o["predicted_profit_usd"], o["realised_profit_usd"],
                        rc["gasUsed"], after.hf))
    for i, before in untouched.items():
        assert await holdings(d, world, cas[i]) == before
    assert (await account_state(d, dep, cas[BAD_DEBT])).liquidatable
    # Realised figures agree with the wallet's balances measured independently.
    realised = sum(o["realised_profit_usd"] for o in liqs.values())
    assert await wallet.net_usd() == pytest.approx(realised, rel=0.005)
    with capsys.disabled():
        for f in figures:
            print(f"\ngearbox e2e: account {f[0]} {f[1]}: repaid {f[2]:.2f} USDC, predicted {f[3]:.4f} realised "
                  f"{f[4]:.4f} USD, gas {f[5]}, HF after {f[6]:.4f}")


async def test_dry_run_sends_nothing(deployer, world, tmp_path):
    d, cas = deployer, accounts(world)
    await drop_weth(d, world)
    keeper = await keeper_for(world, tmp_path, mode="dry-run", **PARTIAL_ONLY)
    n0 = await nonce(d)
    await run_and_close(keeper)
    report = keeper.recorder.report()
    assert await nonce(d) == n0 and report["liquidations"] == []
    assert {o["account"] for o in report["dry_run"]} == {cas[i] for i in PARTIAL}
    assert all(o["predicted_profit_usd"] > 0 and o["details"]["gas_simulated"] > 0 for o in report["dry_run"])
    assert [s["account"] for s in report["skipped"]] == [cas[BAD_DEBT]]
    for i in PARTIAL:
        assert (await account_state(d, gearbox(world), cas[i])).liquidatable  # nobody was liquidated


async def test_fully_liquidated_accounts_are_skipped(deployer, world, tmp_path):
    """Someone else fully liquidated two accounts: they stay in the credit manager with debt 0 and
    are neither planned nor reported; the others are partially liquidated."""
    d, dep, cas = deployer, gearbox(world), accounts(world)
    await drop_weth(d, world)
    other = world.take_accounts(1)[0]
    for i in (0, BAD_DEBT):
        await liquidate_fully(d, dep, cas[i], other)
        assert (await account_state(d, dep, cas[i])).debt == 0
    cm = d.at(dep.credit_manager, dep.abis["CreditManagerV3"])
    assert await cm.functions.creditAccountsLen().call() == len(cas)  # still listed
    keeper = await keeper_for(world, tmp_path)
    n0 = await nonce(d)
    try:
        rows = {r.account: r for r in await keeper.scan()}
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    assert cas[0] not in rows and cas[BAD_DEBT] not in rows
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == [] and report["skipped"] == []
    assert {o["account"] for o in report["liquidations"]} == {cas[i] for i in PARTIAL if i != 0}
    assert await nonce(d) == n0 + 1 + len(PARTIAL) - 1


async def test_wallet_budget_caps_the_plans(deployer, world, tmp_path):
    """The keeper holds 6,000 USDC: the first plan takes what it can, the rest is planned again with
    what is left; nothing reverts, nothing spends more than the wallet holds."""
    d, dep, cas = deployer, gearbox(world), accounts(world)
    usdc = dep.underlying
    erc20 = [{"type": "function", "name": "transfer", "stateMutability": "nonpayable",
              "inputs": [{"name": "to", "type": "address"}, {"name": "v", "type": "uint256"}],
              "outputs": [{"name": "", "type": "bool"}]}]
    await d.transact(usdc.address, erc20, "transfer", d.sender, (KEEPER_USDC - 6_000) * 10**6, sender=KEEPER_ADDRESS)
    await drop_weth(d, world)
    keeper = await keeper_for(world, tmp_path, **PARTIAL_ONLY)
    await run_and_close(keeper, until_quiet=True)
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    spent = sum(int(o["details"]["repaid_amount"]) for o in report["liquidations"])
    assert 0 < spent <= 6_000 * 10**6
    assert await balance_of(d, usdc, KEEPER_ADDRESS) == 6_000 * 10**6 - spent
    for o in report["liquidations"]:
        assert (await account_state(d, dep, o["account"])).hf >= 1
    # Too little left for the others: reported with the reason, never sent.
    reasons = {s["account"]: s["reason"] for s in report["skipped"]}
    assert reasons[cas[BAD_DEBT]] == FULL_ONLY
    assert any(r.startswith("wallet holds") for a, r in reasons.items() if a != cas[BAD_DEBT])


async def test_scan_rows(deployer, world, tmp_path):
    d, dep, cas = deployer, gearbox(world), accounts(world)
    await drop_weth(d, world)
    keeper = await keeper_for(world, tmp_path, **PARTIAL_ONLY)
    n0 = await nonce(d)
    try:
        rows = {r.account: r for r in await keeper.scan()}
    finally:
        await keeper.close()
    assert await nonce(d) == n0
    assert set(rows) == set(cas)
    for i, ca in enumerate(cas):
        st = await account_state(d, dep, ca)
        r = rows[ca]
        assert r.protocol == "gearbox_v3" and r.liquidatable == st.liquidatable
        assert r.health == pytest.approx(st.hf, rel=1e-5)
        assert r.debt_usd == pytest.approx(st.total_debt_usd / 1e8, rel=1e-6)
        if i in PARTIAL:
            assert r.pair == f"{PARTIAL[i]}/USDC" and r.expected_profit_usd > 0 and r.why == "liquidatable"
    assert rows[cas[HEALTHY]].why == "healthy" and rows[cas[HEALTHY]].pair == "WBTC/USDC"
    assert rows[cas[BAD_DEBT]].why == FULL_ONLY and rows[cas[BAD_DEBT]].expected_profit_usd is None


async def test_gearbox_alongside_aave_in_the_demo_world(deployer, real_world, snapshot, tmp_path):
    """The lead's demo world (real Aave V3, keeper inventory) plus add_gearbox_to_world: one keeper,
    both protocols, one USDC inventory; a WETH drop liquidates on both."""
    from keeper_devnet.protocols.aave_v3.common import account_data
    from keeper_devnet.world import config_text, open_position
    d = deployer
    w = copy.deepcopy(real_world)
    dep = await add_gearbox_to_world(d, w)
    assert w.tokens["USDC"] is dep.underlying and "gearbox_v3" in config_text(w) and "aave_v3" in config_text(w)
    (aave_user,) = w.take_accounts(1)
    await open_position(d, w, aave_user, {"WETH": 10}, {"USDC": 24_000 * 0.8})
    keeper = await make_keeper(w, tmp_path)
    try:
        await drop_weth(d, w)
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    by: dict[str, list] = {}
    for o in report["liquidations"]:
        by.setdefault(o["protocol"], []).append(o)
    assert [o["account"] for o in by["aave_v3"]] == [aave_user]
    assert (await account_data(d, w.aave, aave_user))[5] >= E18
    cas = w.extra["gearbox_accounts"]
    # Every unhealthy account is liquidated, the one with bad debt too: fully where that pays more
    # (the wallet holds enough USDC for it), partially otherwise.
    assert {o["account"] for o in by["gearbox_v3"]} == {cas[i] for i in [*PARTIAL, BAD_DEBT]}
    assert report["skipped"] == []
    for i in [*PARTIAL, BAD_DEBT]:
        st = await account_state(d, dep, cas[i])
        assert not st.liquidatable and (st.debt == 0 or st.hf >= 1)
