"""The v3.3 stand-in against the real Pool of @aave/core-v3 1.19.3 (v3.0 rules), side by side on the
same tokens and Chainlink feeds: the same positions give the same account data and the same set of
liquidatable users, and each pool's liquidationCall matches its own rule set to the wei (debt
repaid, collateral to the liquidator, protocol fee), as the keeper's rules.py predicts it. Where the
rule sets agree on the close factor they repay the same debt; the collateral then differs only by
the rounding the latest release made explicit (v3.7: bonus rounded down, fee rounded up): at most
2 wei. Where the close factors differ (HF in (0.95, 1): v3.0 caps at 50% of the reserve's debt in
token units, v3.3 at 50% of the total debt computed in base currency), the two differ by less than
one base-currency unit of debt.

The real pool gets zero-rate interest strategies before any supply, so neither pool accrues interest
between blocks (the stand-in has none)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from keeper_devnet.deploy import Deployer
from keeper_devnet.protocols.aave_v3.common import (
    DEFAULT_RESERVE_PARAMS,
    AaveDeployment,
    borrow,
    supply,
)
from keeper_devnet.protocols.aave_v3.real import (
    art,
    configurator_artifact,
    deploy_aave_v3,
    pool_artifact,
)
from keeper_devnet.protocols.aave_v3.standin import deploy_aave_v33_standin
from keeper_devnet.tokens import Token, approve, deploy_default_tokens, mint, set_price

from keeper.protocols.aave_v3 import rules as rules
from tests.protocols.aave_v3.helpers import Leg, liquidation

UINT_MAX = 2**256 - 1
WAD = 10**18
USD = 10**8
RAY = 10**27
HF_095 = 95 * 10**16

# (collateral symbol, amount, debt symbol, amount) in token units, before the price drop
# (WETH 3,000, WBTC 60,000); after it (WETH 2,700, WBTC 50,000) the HFs are as commented.
POSITIONS = [
    ("WETH", 10 * WAD, "USDC", 23_000 * 10**6),  # 0.9685: 50%
    ("WETH", 10 * WAD, "USDC", 24_000 * 10**6),  # 0.928: 100%
    ("WBTC", 50_000_000, "USDC", 21_000 * 10**6),  # 0.893: 100%
    ("WETH", 10 * WAD, "WBTC", 39_000_000),  # 1.142: healthy
    ("WBTC", 30_000_000, "WETH", 4_187_654_321_987_654_321),  # 0.995: 50%, debt not round in base units
    ("USDC", 15_000 * 10**6, "WBTC", 19_000_000),  # 1.263: healthy
    ("WBTC", 20_000_000, "USDC", 8_000 * 10**6),  # 0.9375: 100%
    ("WETH", 10 * WAD, "USDC", 22_999_999_999),  # 0.9685: 50% of an odd amount
]
DROP = {"WETH": 2_700 * USD, "WBTC": 50_000 * USD}


@dataclass
class World:
    d: Deployer
    t: dict[str, Token]
    real: AaveDeployment
    standin: AaveDeployment
    users: list[str]
    liquidator: str


async def zero_interest(d: Deployer, dep: AaveDeployment) -> None:
    """Give every reserve of the real pool a strategy with all rates 0 (indexes stay 1 ray)."""
    strategy = await d.deploy(
        art("protocol/pool/DefaultReserveInterestRateStrategy.sol/DefaultReserveInterestRateStrategy.json"),
        dep.provider, 80 * RAY // 100, 0, 0, 0, 0, 0, 0, 0, 20 * RAY // 100)
    for t in dep.tokens.values():
        await d.transact(dep.extra["configurator"], configurator_artifact().abi,
                         "setReserveInterestRateStrategyAddress", t.address, strategy)


@pytest.fixture(scope="module")
async def world(deployer) -> World:
    d = deployer
    tokens = await deploy_default_tokens(d)
    real = await deploy_aave_v3(d, tokens)
    await zero_interest(d, real)
    standin = await deploy_aave_v33_standin(d, tokens)
    accounts = await d.w3.eth.accounts
    lender, liquidator, users = accounts[26], accounts[27], list(accounts[28:28 + len(POSITIONS)])
    for dep in (real, standin):
        for sym, amount in (("USDC", 2_000_000), ("WBTC", 50), ("WETH", 1_000)):
            await supply(d, dep, lender, tokens[sym], tokens[sym].units(amount))
        for user, (cs, ca, ds, da) in zip(users, POSITIONS):
            await supply(d, dep, user, tokens[cs], ca)
            await borrow(d, dep, user, tokens[ds], da)
    for sym in ("USDC", "WBTC", "WETH"):
        await mint(d, tokens[sym], liquidator, tokens[sym].units(10_000_000 if sym == "USDC" else 10_000))
        for dep in (real, standin):
            await approve(d, tokens[sym], liquidator, dep.pool, UINT_MAX)
    return World(d, tokens, real, standin, users, liquidator)


@pytest.fixture
async def w(world, snapshot):
    prices = {s: t.price for s, t in world.t.items()}
    yield world
    for s, t in world.t.items():
        t.price = prices[s]


# Both pools are driven and decoded with the REAL Pool ABI: one adapter for both.
def pool_abi() -> list:
    return pool_artifact().abi


async def account(w: World, dep: AaveDeployment, user: str) -> tuple:
    return tuple(await w.d.call(dep.pool, pool_abi(), "getUserAccountData", user))


async def drop_prices(w: World) -> None:
    for sym, price in DROP.items():
        await set_price(w.d, w.t[sym], price)


async def liquidate(w: World, dep: AaveDeployment, user: str, coll: str, debt: str, amount: int) -> dict:
    receipt = await w.d.transact(dep.pool, pool_abi(), "liquidationCall", w.t[coll].address, w.t[debt].address,
                                 user, amount, False, sender=w.liquidator)
    event = w.d.at(dep.pool, pool_abi()).events.LiquidationCall()
    topic = bytes.fromhex(event.topic.removeprefix("0x"))
    [args] = [dict(event.process_log(lg)["args"]) for lg in receipt["logs"]
              if lg["address"] == dep.pool and bytes(lg["topics"][0]) == topic]
    return args


BALANCE_OF = [{"type": "function", "name": "balanceOf", "stateMutability": "view",
               "inputs": [{"name": "a", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]}]


async def balance(w: World, token: str, who: str) -> int:
    return await w.d.call(token, BALANCE_OF, "balanceOf", who)


async def legs(w: World, dep: AaveDeployment, user: str, coll: str, debt: str) -> tuple[Leg, Leg]:
    """The user's aToken balance in the collateral reserve and variable debt in the debt reserve."""
    c, d = w.t[coll], w.t[debt]
    return (Leg(c.price, c.decimals, await balance(w, dep.extra["a_tokens"][coll], user)),
            Leg(d.price, d.decimals, await balance(w, dep.extra["variable_debt"][debt], user)))


async def test_same_account_data_and_liquidatable_set(w):
    for user in w.users:
        assert await account(w, w.real, user) == await account(w, w.standin, user)
        assert (await w.d.call(w.real.pool, pool_abi(), "getUserConfiguration", user)
                == await w.d.call(w.standin.pool, pool_abi(), "getUserConfiguration", user))
    await drop_prices(w)
    data = {}
    for user in w.users:
        data[user] = await account(w, w.real, user)
        assert data[user] == await account(w, w.standin, user)  # all six values, to the wei
    hfs = [data[u][5] for u in w.users]
    liquidatable = {u for u in w.users if data[u][5] < WAD}
    assert liquidatable == {w.users[i] for i in (0, 1, 2, 4, 6, 7)}
    assert [HF_095 < hf < WAD for hf in hfs] == [True, False, False, False, True, False, False, True]


async def test_liquidation_call_max_on_both_pools(w):
    await drop_prices(w)
    for i, (user, (cs, _, ds, _)) in enumerate(zip(w.users, POSITIONS)):
        _, total_debt, _, _, _, hf = await account(w, w.standin, user)
        if hf >= WAD:
            continue
        p = DEFAULT_RESERVE_PARAMS[cs]
        c, d = await legs(w, w.standin, user, cs, ds)
        expect = {name: liquidation(dep.rules, hf, total_debt, c, d, p.liquidation_bonus, p.protocol_fee, UINT_MAX)
                  for name, dep in (("real", w.real), ("standin", w.standin))}
        got = {}
        for name, dep in (("real", w.real), ("standin", w.standin)):
            assert (c, d) == await legs(w, dep, user, cs, ds)
            a_token, treasury = dep.extra["a_tokens"][cs], dep.extra["treasury"]
            fee_before = await balance(w, a_token, treasury)
            ev = await liquidate(w, dep, user, cs, ds, UINT_MAX)
            got[name] = (ev["debtToCover"], ev["liquidatedCollateralAmount"])
            assert got[name] == expect[name][:2], (i, name)
            assert await balance(w, a_token, treasury) - fee_before == expect[name][2] > 0, (i, name)
            # The keeper's own planning maths predicts the same amounts for each rule set.
            out = rules.liquidate(dep.rules, hf, total_debt, rules.Side(c.price, c.decimals, c.balance),
                                  rules.Side(d.price, d.decimals, d.balance), p.liquidation_bonus,
                                  p.protocol_fee, UINT_MAX)
            assert (out.debt_repaid, out.collateral_to_liquidator) == got[name], (i, name)
        if hf <= HF_095:  # both rules: 100% of the reserve's debt
            assert got["real"][0] == got["standin"][0], i
            assert 0 <= got["real"][1] - got["standin"][1] <= 2, i  # v3.7 rounds against the liquidator
            real, standin = await account(w, w.real, user), await account(w, w.standin, user)
            two_wei = -(-2 * c.price // c.unit)  # the collateral left differs by <= 2 wei
            assert real[1] == standin[1] and abs(real[0] - standin[0]) <= two_wei, i
        else:
            # 50%: v3.0 of the reserve's debt in token units (half up); v3.3 of the total debt in
            # base currency (8 decimals, rounded down), converted back rounding down.
            gap = got["real"][0] - got["standin"][0]
            assert 0 <= gap <= d.unit // d.price + 1, (i, gap)
            assert (gap == 0) == (i == 0), (i, gap)  # 23,000 USDC: exact in base units; the others not


async def test_liquidation_call_below_both_caps_agrees_but_for_v37_rounding(w):
    """An explicit debtToCover under both close factors: the same debt repaid; the collateral the
    same but for v3.7's rounding (at most 2 wei against the liquidator)."""
    await drop_prices(w)
    for i in (0, 4, 7):  # HF in (0.95, 1)
        user, (cs, _, ds, da) = w.users[i], POSITIONS[i]
        amount = da * 2 // 5  # 40% of the debt
        ev_real = await liquidate(w, w.real, user, cs, ds, amount)
        ev_standin = await liquidate(w, w.standin, user, cs, ds, amount)
        assert ev_real["debtToCover"] == ev_standin["debtToCover"] == amount
        # v3.7 rounds the bonus down and the fee up: the liquidator gets up to 2 wei less.
        assert 0 <= ev_real["liquidatedCollateralAmount"] - ev_standin["liquidatedCollateralAmount"] <= 2
        assert ev_standin["liquidatedCollateralAmount"] > 0
        real, standin = await account(w, w.real, user), await account(w, w.standin, user)
        two_wei = -(-2 * w.t[cs].price // 10**w.t[cs].decimals)  # the collateral left differs by <= 2 wei
        assert real[1] == standin[1] and abs(real[0] - standin[0]) <= two_wei
