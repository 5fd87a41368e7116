"""The real Morpho Blue (@morpho-org/morpho-blue 1.0.0, compiled from the package with solc 0.8.19):
market ids, events decoded with the merged EventsLib ABI, a liquidation after a feed price drop with
Morpho's LIF maths to the wei, and interest accrued by the package's IrmMock."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from keeper_devnet.deploy import Deployer, DeployError
from keeper_devnet.protocols.morpho_blue.world import (
    MorphoDeployment,
    accrue_interest,
    borrow,
    borrow_rate_view,
    deploy_morpho_blue,
    events,
    liquidate,
    market,
    market_id,
    morpho_abi,
    oracle_price,
    position,
    supply,
    supply_collateral,
)
from keeper_devnet.tokens import (
    Token,
    balance_of,
    deploy_default_tokens,
    mint,
    set_price,
)

from keeper.protocols.morpho_blue import maths as mm

WAD = 10**18
USDC = 10**6
COLLATERAL = 10 * WAD  # WETH
DEBT = 25_000 * USDC  # LTV 83.3% at $3,000 against LLTV 86%


@dataclass
class World:
    d: Deployer
    t: dict[str, Token]
    dep: MorphoDeployment
    lender: str
    borrower: str
    liquidator: str


@pytest.fixture(scope="module")
async def world(deployer) -> World:
    d = deployer
    tokens = await deploy_default_tokens(d)
    dep = await deploy_morpho_blue(d, tokens)
    lender, borrower, liquidator = (await d.w3.eth.accounts)[33:36]
    m = dep.markets["WETH/USDC"]
    await supply(d, dep, m, lender, 100_000 * USDC)  # 25% utilisation: IrmMock gives 25% APR
    await supply_collateral(d, dep, m, borrower, COLLATERAL)
    await borrow(d, dep, m, borrower, DEBT)
    await mint(d, tokens["USDC"], liquidator, 100_000 * USDC)
    return World(d, tokens, dep, lender, borrower, liquidator)


@pytest.fixture
async def w(world, snapshot):
    prices = {s: t.price for s, t in world.t.items()}
    yield world
    for s, t in world.t.items():
        t.price = prices[s]


async def test_market_ids_and_create_market_event(w):
    abi = await morpho_abi()
    for key, m in w.dep.markets.items():
        coll, loan = key.split("/")
        assert (m.collateral.symbol, m.loan.symbol) == (coll, loan)
        assert m.id == market_id(m.params)
        assert tuple(await w.d.call(w.dep.morpho, abi, "idToMarketParams", m.id)) == m.params
    # 1 WETH in USDC units, scaled by 1e36: 3000e6 * 1e36 / 1e18.
    assert await oracle_price(w.d, w.dep.markets["WETH/USDC"]) == 3000 * 10**24
    assert await oracle_price(w.d, w.dep.markets["WBTC/WETH"]) == 20 * 10**36 * WAD // 10**8

    m = w.dep.markets["WETH/USDC"]
    params = (m.loan.address, m.collateral.address, m.oracle, m.irm, 945 * 10**15)
    enable = await w.d.transact(w.dep.morpho, abi, "enableLltv", params[4])
    assert [e["lltv"] for e in await events(w.d, w.dep, enable, "EnableLltv")] == [params[4]]
    receipt = await w.d.transact(w.dep.morpho, abi, "createMarket", params)
    [created] = await events(w.d, w.dep, receipt, "CreateMarket")
    assert "0x" + bytes(created["id"]).hex() == market_id(params)
    assert tuple(created["marketParams"].values()) == params
    with pytest.raises(DeployError, match="market already created"):
        await w.d.transact(w.dep.morpho, abi, "createMarket", params)


def lif(lltv: int) -> int:
    """Morpho's liquidation incentive factor: min(1.15, 1 / (1 - 0.3 (1 - lltv))), WAD, rounded down."""
    return min(115 * WAD // 100, WAD * WAD // (WAD - 3 * WAD // 10 * (WAD - lltv) // WAD))


async def healthy(w: World, user: str) -> bool:
    m = w.dep.markets["WETH/USDC"]
    pos = await position(w.d, w.dep, m, user)
    return mm.is_healthy(pos.borrow_shares, pos.collateral, await market(w.d, w.dep, m),
                         await oracle_price(w.d, m), m.lltv)


async def test_liquidation_after_price_drop(w):
    m, weth, usdc = w.dep.markets["WETH/USDC"], w.t["WETH"], w.t["USDC"]
    assert lif(m.lltv) == 1_043_841_336_116_910_229  # 1 / 0.958
    assert await healthy(w, w.borrower)
    with pytest.raises(DeployError, match="position is healthy"):
        await liquidate(w.d, w.dep, m, w.liquidator, w.borrower, seized_assets=WAD)

    # Max borrow 10 x 2,700 x 0.86 = 23,220 < 25,000; still unhealthy after seizing 2 WETH
    # (8 x 2,700 x 0.86 = 18,576 against 25,000 - 2 x 2,700 / LIF = 19,827).
    await set_price(w.d, weth, 2_700 * 10**8)
    price = await oracle_price(w.d, m)
    assert price == 2_700 * 10**24
    assert not await healthy(w, w.borrower)

    for kind in ("seized", "shares"):
        pos = await position(w.d, w.dep, m, w.borrower)
        bal = [await balance_of(w.d, t, who) for t in (weth, usdc) for who in (w.liquidator, w.dep.morpho)]
        if kind == "seized":
            ev = await liquidate(w.d, w.dep, m, w.liquidator, w.borrower, seized_assets=2 * WAD)
        else:
            ev = await liquidate(w.d, w.dep, m, w.liquidator, w.borrower, repaid_shares=pos.borrow_shares // 4)
        after = await market(w.d, w.dep, m)
        # The market as liquidate saw it (after accruing interest): add back what it repaid.
        seen = mm.Market(after.total_supply_assets, after.total_supply_shares,
                         after.total_borrow_assets + ev["repaidAssets"],
                         after.total_borrow_shares + ev["repaidShares"], after.last_update, after.fee)
        expected = (mm.by_seized(2 * WAD, seen, price, m.lltv) if kind == "seized"
                    else mm.by_shares(pos.borrow_shares // 4, seen, price, m.lltv))
        assert (ev["seizedAssets"], ev["repaidAssets"]) == (expected.seized, expected.repaid_assets)
        assert ev["badDebtAssets"] == ev["badDebtShares"] == 0
        assert (ev["caller"], ev["borrower"]) == (w.liquidator, w.borrower)
        # The incentive: seized value = repaid value x LIF (to rounding).
        assert abs(ev["seizedAssets"] * price // 10**36 - ev["repaidAssets"] * lif(m.lltv) // WAD) <= 2
        new = await position(w.d, w.dep, m, w.borrower)
        assert new.collateral == pos.collateral - ev["seizedAssets"]
        assert new.borrow_shares == pos.borrow_shares - ev["repaidShares"]
        now = [await balance_of(w.d, t, who) for t in (weth, usdc) for who in (w.liquidator, w.dep.morpho)]
        s, r = ev["seizedAssets"], ev["repaidAssets"]
        assert [a - b for a, b in zip(now, bal)] == [s, -s, -r, r]


async def test_interest_accrues(w):
    m = w.dep.markets["WETH/USDC"]
    before = await market(w.d, w.dep, m)
    rate = await borrow_rate_view(w.d, m, before)
    assert rate == (before.total_borrow_assets * WAD // before.total_supply_assets) // (365 * 86400)
    await w.d.rpc("evm_increaseTime", [30 * 86400])
    await w.d.rpc("evm_mine", [])
    receipt = await accrue_interest(w.d, w.dep, m)
    after = await market(w.d, w.dep, m)
    ts = (await w.d.w3.eth.get_block(receipt["blockNumber"]))["timestamp"]
    assert after == mm.accrue(before, rate, ts)
    [ev] = await events(w.d, w.dep, receipt, "AccrueInterest")
    assert ev["interest"] == after.total_borrow_assets - before.total_borrow_assets
    # 25% APR for 30 days: about 2.07% of the debt.
    assert 0.02 < ev["interest"] / before.total_borrow_assets < 0.021
    assert after.total_supply_assets - before.total_supply_assets == ev["interest"]
