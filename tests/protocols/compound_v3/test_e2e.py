"""The keeper end to end on Compound III (the Comet stand-in, contracts/comet): absorb() of
liquidatable accounts in batches, then buyCollateral() of what they freed at the store-front
discount; everything asserted on chain (events, balances, Comet's own views)."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.protocols.compound_v3.world import (
    CometDeployment,
    add_comet_to_world,
    comet_abi,
    comet_call,
    comet_config_entry,
    comet_transact,
    fund_reserves,
    open_comet_position,
)
from keeper_devnet.tokens import balance_of, erc20_artifact, set_price
from keeper_devnet.world import KEEPER_ADDRESS, World, bare_world

from keeper.protocols.compound_v3 import maths as cm
from keeper.protocols.compound_v3.adapter import ACCRUAL_NOTE, NOT_FOR_SALE
from tests.helpers.keeper import Wallet, make_keeper, run_and_close, run_until_quiet, step

E18 = 10**18
KEEPER_USDC = 500_000  # whole USDC in the keeper wallet: enough to buy everything freed
# COMET_DEMO_POSITIONS after a 30% WETH drop: indexes 2, 3, 5 (both collaterals) and 6 (small).
UNHEALTHY = (2, 3, 5, 6)
SMALL = 6


@pytest.fixture(scope="module")
async def comet_world(deployer) -> World:
    """Multicall3, fresh tokens, the Comet stand-in with the demo borrowers and a funded keeper,
    deployed once for the module (each test then runs inside a snapshot)."""
    world = await bare_world(deployer)
    await add_comet_to_world(deployer, world, keeper_base=KEEPER_USDC)
    return world


@pytest.fixture
async def world(comet_world, snapshot):
    yield copy.deepcopy(comet_world)  # prices and accounts changed in a test go back with the revert


def comet(world: World) -> CometDeployment:
    return world.extra["comet"]


def borrowers(world: World) -> list[str]:
    return world.extra["comet_borrowers"]


async def keeper_for(world, tmp_path, *, min_profit_usd="1", max_gas_price_gwei="50", mode="live", **entry):
    world.entries = {"compound_v3": comet_config_entry(comet(world), **entry)}
    return await make_keeper(world, tmp_path, min_profit_usd=min_profit_usd,
                             max_gas_price_gwei=max_gas_price_gwei, mode=mode)


async def drop_weth(d, world, bps=3_000):
    weth = world.tokens["WETH"]
    await set_price(d, weth, weth.price * (10_000 - bps) // 10_000)


async def call(d, world, fn, *args):
    return await comet_call(d, comet(world), fn, *args)


async def events(d, world, receipt, name: str) -> list[dict]:
    event = d.at(comet(world).comet, await comet_abi()).events[name]()
    topic = event.topic.removeprefix("0x")
    return [dict(event.process_log(lg)["args"]) for lg in receipt["logs"]
            if lg["address"] == comet(world).comet and lg["topics"] and lg["topics"][0].hex() == topic]


async def receipts(d, outcome: dict) -> list[dict]:
    return [await d.w3.eth.get_transaction_receipt(h) for h in outcome["details"]["tx_hashes"]]


async def nonce(d) -> int:
    return await d.w3.eth.get_transaction_count(KEEPER_ADDRESS)


async def positions(d, world, users) -> dict[str, tuple]:
    """(debt, WETH, WBTC) of each user on Comet."""
    weth, wbtc = (world.tokens[s].address for s in ("WETH", "WBTC"))
    return {u: (await call(d, world, "borrowBalanceOf", u), await call(d, world, "collateralBalanceOf", u, weth),
                await call(d, world, "collateralBalanceOf", u, wbtc)) for u in users}


def store_front(world, sym: str, prices: dict[str, int]) -> cm.StoreFront:
    t = world.tokens[sym]
    lf = {"WETH": 95 * 10**16, "WBTC": 95 * 10**16}[sym]  # DEFAULT_ASSET_PARAMS
    return cm.StoreFront(prices[sym], prices["USDC"], 10**t.decimals, 10**6, lf, 6 * 10**17)


# ---- maths against the contract ------------------------------------------------------------------

async def test_quote_maths_matches_quote_collateral(deployer, world):
    """compound_v3_math's quote equals Comet's quoteCollateral, and max_base_for is the exact edge:
    quote(b) <= reserves < quote(b + 1)."""
    d = deployer
    checked = 0
    for weth_price, wbtc_price in [(3_000_00000000, 60_000_00000000), (2_123_45678901, 57_321_12345678),
                                   (17_00000000, 1_234_00000000)]:
        await set_price(d, world.tokens["WETH"], weth_price)
        await set_price(d, world.tokens["WBTC"], wbtc_price)
        prices = {s: t.price for s, t in world.tokens.items()}
        for sym in ("WETH", "WBTC"):
            sf = store_front(world, sym, prices)
            asset = world.tokens[sym].address
            for base in (1, 999_999, 123_456_789_012, 5_000_000 * 10**6 + 7):
                assert sf.quote(base) == await call(d, world, "quoteCollateral", asset, base)
                checked += 1
            for reserves in (1, 10**5, 3 * 10**17 + 11, 40 * 10**18 + 5, 2 * 10**7 + 1):
                b = sf.max_base_for(reserves)
                assert await call(d, world, "quoteCollateral", asset, b) <= reserves
                assert await call(d, world, "quoteCollateral", asset, b + 1) > reserves
                checked += 1
    assert checked == 3 * 2 * 9


async def test_local_valuation_agrees_with_is_liquidatable(deployer, world):
    d, users = deployer, borrowers(world)
    weth, wbtc = world.tokens["WETH"], world.tokens["WBTC"]
    lcf = {weth.address: 895 * 10**15, wbtc.address: 77 * 10**16}
    seen = set()
    for drop in (0, 2_000, 3_000, 4_000):
        await set_price(d, weth, 3_000_00000000 * (10_000 - drop) // 10_000)
        pos = await positions(d, world, users)
        for u in users:
            debt, w, b = pos[u]
            holdings = [cm.Holding(w, weth.price, E18, lcf[weth.address]),
                        cm.Holding(b, wbtc.price, 10**8, lcf[wbtc.address])]
            local = cm.liquidity(debt, 10**8, 10**6, holdings) < 0
            assert local == await call(d, world, "isLiquidatable", u)
            seen.add(local)
    assert seen == {True, False}


# ---- the keeper on Comet -----------------------------------------------------------------------

async def test_price_drop_absorbs_in_batches_and_buys_at_discount(deployer, world, tmp_path, capsys):
    d, dep, users = deployer, comet(world), borrowers(world)
    keeper = await keeper_for(world, tmp_path, max_absorb_batch=3)
    try:
        n0 = await nonce(d)
        await step(keeper)
        assert keeper.recorder.outcomes == [] and await nonce(d) == n0  # all healthy before the drop
        await drop_weth(d, world)
        unhealthy = {u for u in users if await call(d, world, "isLiquidatable", u)}
        assert unhealthy == {users[i] for i in UNHEALTHY}  # the scenario is what comet.py says
        before = await positions(d, world, users)
        wallet = await Wallet(d, world).start()
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == [] and report["skipped"] == []
    liqs = report["liquidations"]
    # Two absorb batches (3 + 1, largest collateral first), each account in exactly one.
    assert [len(o["accounts"]) for o in liqs] == [3, 1]
    absorbed = [u for o in liqs for u in o["accounts"]]
    assert sorted(absorbed) == sorted(unhealthy)
    assert liqs[1]["account"] == users[SMALL]
    after = await positions(d, world, users)
    for u in users:
        if u in unhealthy:
            assert after[u] == (0, 0, 0)  # debt wiped, every collateral taken by the protocol
        else:
            assert after[u][1:] == before[u][1:] and after[u][0] >= before[u][0] > 0  # untouched
    prices = {s: t.price for s, t in world.tokens.items()}
    figures = []
    for o in liqs:
        rcs = await receipts(d, o)
        assert all(rc["status"] == 1 for rc in rcs)
        absorb_rc, buy_rcs = rcs[0], rcs[1:]
        assert {e["borrower"] for e in await events(d, world, absorb_rc, "AbsorbDebt")} == set(o["accounts"])
        assert all(e["absorber"] == KEEPER_ADDRESS for e in await events(d, world, absorb_rc, "AbsorbDebt"))
        assert len(buy_rcs) == len(o["details"]["buys"]) >= 1
        for rc, planned in zip(buy_rcs, o["details"]["buys"]):
            (ev,) = await events(d, world, rc, "BuyCollateral")
            assert ev["buyer"] == KEEPER_ADDRESS and ev["asset"] == planned["asset"]
            assert ev["baseAmount"] == int(planned["base_amount"])
            assert ev["collateralAmount"] == int(planned["collateral"])
            sym = planned["symbol"]
            # Bought at Comet's quote: the store-front discount of 0.6 x (1 - 0.95) = 3%.
            assert ev["collateralAmount"] == store_front(world, sym, prices).quote(ev["baseAmount"])
            value = ev["collateralAmount"] * prices[sym] // 10**world.tokens[sym].decimals
            paid = ev["baseAmount"] * 100  # USDC 6 dec -> USD 8 dec at $1
            assert value / paid == pytest.approx(1 / 0.97, rel=1e-4)
        assert o["realised_profit_usd"] == pytest.approx(o["predicted_profit_usd"], rel=0.005)
        assert o["predicted_profit_usd"] > 0
        figures.append((o["label"], o["predicted_profit_usd"], o["realised_profit_usd"], absorb_rc["gasUsed"],
                        [rc["gasUsed"] for rc in buy_rcs]))
    # Everything freed was bought: what is left for sale is worth less than one base unit.
    for sym in ("WETH", "WBTC"):
        left = await call(d, world, "getCollateralReserves", world.tokens[sym].address)
        assert store_front(world, sym, prices).max_base_for(left) == 0
    # The realised figures agree with the wallet's balances measured independently.
    assert await wallet.net_usd() == pytest.approx(sum(o["realised_profit_usd"] for o in liqs), rel=0.005)
    with capsys.disabled():
        for f in figures:
            print(f"\ncomet e2e: {f[0]}: predicted {f[1]:.4f} realised {f[2]:.4f} USD, "
                  f"absorb gas {f[3]}, buyCollateral gas {f[4]}")


async def test_dry_run_sends_nothing(deployer, world, tmp_path):
    d, users = deployer, borrowers(world)
    await drop_weth(d, world)
    keeper = await keeper_for(world, tmp_path, mode="dry-run")
    n0 = await nonce(d)
    await run_and_close(keeper)
    report = keeper.recorder.report()
    assert await nonce(d) == n0
    assert report["liquidations"] == [] and report["skipped"] == []
    (o,) = report["dry_run"]  # one batch of all four
    assert sorted(o["accounts"]) == sorted(users[i] for i in UNHEALTHY)
    assert o["predicted_profit_usd"] > 0 and o["details"]["gas_simulated"] > 0
    for i in UNHEALTHY:
        assert await call(d, world, "isLiquidatable", users[i])  # nobody was absorbed


@pytest.mark.parametrize("switch", [False, True])
async def test_absorb_the_purchase_cannot_pay_for_only_with_the_switch(deployer, world, tmp_path, switch):
    """At 80 gwei the small account's collateral (0.2 WETH, ~$12.6 of discount) cannot pay for its
    absorb: skipped, unless absorb_without_profit is on."""
    d, users = deployer, borrowers(world)
    await drop_weth(d, world)
    keeper = await keeper_for(world, tmp_path, max_gas_price_gwei="200", max_absorb_batch=3,
                              absorb_without_profit=switch)
    await d.rpc("anvil_setNextBlockBaseFeePerGas", [hex(80 * 10**9)])
    await d.rpc("evm_mine", [])
    await run_and_close(keeper)
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    small = users[SMALL]
    big = {users[i] for i in UNHEALTHY} - {small}
    confirmed = {u for o in report["liquidations"] for u in o["accounts"]}
    for u in big:
        assert await call(d, world, "borrowBalanceOf", u) == 0
    if switch:
        assert confirmed == big | {small}
        (o,) = [o for o in report["liquidations"] if o["account"] == small]
        assert o["predicted_profit_usd"] < 0 and o["realised_profit_usd"] < 0  # sent anyway
        assert await call(d, world, "borrowBalanceOf", small) == 0
    else:
        assert confirmed == big
        (s,) = report["skipped"]
        assert s["account"] == small and "below min_profit_usd" in s["reason"]
        assert s["accounts"] == [small]
        assert await call(d, world, "isLiquidatable", small)  # no absorb was sent for it
        assert await call(d, world, "collateralBalanceOf", small, world.tokens["WETH"].address) == 2 * 10**17


@pytest.mark.parametrize("switch", [False, True])
async def test_no_base_in_the_wallet(deployer, world, tmp_path, switch):
    """Nothing to buy the collateral with: each account skipped with the reason; with the switch one
    absorb of all four and no buyCollateral."""
    d, users = deployer, borrowers(world)
    usdc = world.tokens["USDC"]
    await d.transact(usdc.address, (await erc20_artifact()).abi, "transfer", d.sender,
                     await balance_of(d, usdc, KEEPER_ADDRESS), sender=KEEPER_ADDRESS)
    await drop_weth(d, world)
    keeper = await keeper_for(world, tmp_path, absorb_without_profit=switch)
    n0 = await nonce(d)
    await run_and_close(keeper)
    report = keeper.recorder.report()
    unhealthy = {users[i] for i in UNHEALTHY}
    if not switch:
        assert await nonce(d) == n0 and report["liquidations"] == []
        assert {s["account"] for s in report["skipped"]} == unhealthy
        assert all(s["reason"].startswith("wallet holds 0.00 USDC, needs ") for s in report["skipped"])
        return
    (o,) = report["liquidations"]
    assert o["label"] == "absorb 4" and sorted(o["accounts"]) == sorted(unhealthy)
    assert await nonce(d) == n0 + 1  # the absorb only: no approval, no buyCollateral
    (rc,) = await receipts(d, o)
    assert len(await events(d, world, rc, "AbsorbDebt")) == 4 and await events(d, world, rc, "BuyCollateral") == []
    assert await call(d, world, "getCollateralReserves", world.tokens["WETH"].address) == int(30.2 * 10**18)


@pytest.mark.parametrize("switch", [False, True])
async def test_reserves_at_target_means_no_buy(deployer, world, tmp_path, switch):
    d, users = deployer, borrowers(world)
    await fund_reserves(d, comet(world), 6_000_000 * 10**6)  # target: 5,000,000 USDC
    assert await call(d, world, "getReserves") >= await call(d, world, "targetReserves")
    await drop_weth(d, world)
    keeper = await keeper_for(world, tmp_path, absorb_without_profit=switch)
    n0 = await nonce(d)
    await run_and_close(keeper, until_quiet=True)
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == []
    unhealthy = {users[i] for i in UNHEALTHY}
    if not switch:
        assert await nonce(d) == n0 and report["liquidations"] == []
        assert {s["account"] for s in report["skipped"]} == unhealthy
        assert all(s["reason"] == NOT_FOR_SALE for s in report["skipped"])
        return
    (o,) = report["liquidations"]
    assert o["label"] == "absorb 4" and o["details"]["absorb_only"] == NOT_FOR_SALE
    assert await nonce(d) == n0 + 1  # no buyCollateral sent
    (rc,) = await receipts(d, o)
    assert len(await events(d, world, rc, "AbsorbDebt")) == 4 and await events(d, world, rc, "BuyCollateral") == []
    assert await balance_of(d, world.tokens["USDC"], KEEPER_ADDRESS) == KEEPER_USDC * 10**6


async def test_collateral_already_for_sale_is_bought(deployer, world, tmp_path):
    """Someone else absorbed: the keeper only buys (a buy-only plan for the Comet's reserves)."""
    d, users = deployer, borrowers(world)
    await drop_weth(d, world)
    await comet_transact(d, comet(world), "absorb", d.sender, [users[i] for i in UNHEALTHY])
    keeper = await keeper_for(world, tmp_path)
    await run_and_close(keeper, until_quiet=True)
    report = keeper.recorder.report()
    (o,) = report["liquidations"]
    assert o["account"] == comet(world).comet and o["label"] == "buy WETH+WBTC"
    rcs = await receipts(d, o)
    bought = {e["asset"]: e["collateralAmount"] for rc in rcs for e in await events(d, world, rc, "BuyCollateral")}
    assert bought[world.tokens["WETH"].address] <= int(30.2 * 10**18) < bought[world.tokens["WETH"].address] + 10**15
    assert bought[world.tokens["WBTC"].address] <= 2 * 10**7
    assert o["realised_profit_usd"] == pytest.approx(o["predicted_profit_usd"], rel=0.005)
    assert o["realised_profit_usd"] > 0


async def test_accrual_only_liquidatable_is_absorbed(deployer, world, tmp_path):
    """isLiquidatable reads the stored borrow index: a year without accrual hides the interest.
    The keeper's own valuation (accrued debt) sees it; absorb() accrues first and takes it."""
    d, dep = deployer, comet(world)
    (user,) = world.take_accounts(1)
    await open_comet_position(d, dep, user, {"WETH": 10}, 24_700)
    # Liquidation value 10 x p x 0.895 = 1.002 x debt: healthy by 0.2% at the stored index.
    price = 24_700 * 10**8 * 1002 // 8_950  # 10 x 0.895 = 8.95
    await set_price(d, world.tokens["WETH"], price)
    await d.rpc("evm_increaseTime", [365 * 86400])
    await d.rpc("evm_mine", [])
    assert not await call(d, world, "isLiquidatable", user)
    keeper = await keeper_for(world, tmp_path)
    try:
        rows = {r.account: r for r in await keeper.scan()}
        assert rows[user].liquidatable and rows[user].why == ACCRUAL_NOTE
        assert [u for u, r in rows.items() if r.liquidatable] == [user]
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    (o,) = keeper.recorder.report()["liquidations"]
    assert o["accounts"] == [user] and o["details"]["accrual_only"] == [user]
    rc = (await receipts(d, o))[0]
    assert [e["borrower"] for e in await events(d, world, rc, "AbsorbDebt")] == [user]
    assert await call(d, world, "borrowBalanceOf", user) == 0


async def test_scan_lists_every_borrower(deployer, world, tmp_path):
    d, users = deployer, borrowers(world)
    await drop_weth(d, world)
    keeper = await keeper_for(world, tmp_path, max_absorb_batch=3)
    n0 = await nonce(d)
    try:
        rows = await keeper.scan()
    finally:
        await keeper.close()
    assert await nonce(d) == n0
    by = {r.account: r for r in rows}
    assert set(by) == set(users)  # the lender has no debt: not listed
    for u in users:
        liq = await call(d, world, "isLiquidatable", u)
        r = by[u]
        assert r.liquidatable == liq and (r.health < 1) == liq
        assert r.debt_usd == pytest.approx(await call(d, world, "borrowBalanceOf", u) / 1e6, rel=1e-6)
    planned = [r for r in rows if r.expected_profit_usd is not None]
    assert [r.pair for r in planned] == ["absorb 3 + buy WETH+WBTC", "absorb 1 + buy WETH"]
    assert sum(r.why.startswith("absorbed in one batch with") for r in rows) == 2
    assert by[users[0]].why == "healthy" and by[users[4]].pair == "WBTC/USDC"


async def test_comet_alongside_aave_in_the_demo_world(deployer, real_world, snapshot, tmp_path):
    """The lead's demo world (real Aave V3) plus add_comet_to_world: one keeper, both protocols, one
    shared USDC inventory; a WETH drop liquidates on both."""
    from keeper_devnet.protocols.aave_v3.common import account_data
    from keeper_devnet.world import config_text, open_position
    d = deployer
    w = copy.deepcopy(real_world)
    dep = await add_comet_to_world(d, w)
    assert w.tokens["USDC"] is dep.base and "compound_v3" in config_text(w) and "aave_v3" in config_text(w)
    (aave_user,) = w.take_accounts(1)
    await open_position(d, w, aave_user, {"WETH": 10}, {"USDC": 24_000 * 0.8})
    keeper = await make_keeper(w, tmp_path)
    try:
        await drop_weth(d, w)
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    report = keeper.recorder.report()
    assert report["reverted"] == [] and report["failed"] == [] and report["skipped"] == []
    by = {}
    for o in report["liquidations"]:
        by.setdefault(o["protocol"], []).append(o)
    assert [o["account"] for o in by["aave_v3"]] == [aave_user]
    assert (await account_data(d, w.aave, aave_user))[5] >= E18
    (o,) = by["compound_v3"]
    users = w.extra["comet_borrowers"]
    assert sorted(o["accounts"]) == sorted(users[i] for i in UNHEALTHY)
    for i in UNHEALTHY:
        assert await comet_call(d, dep, "borrowBalanceOf", users[i]) == 0
