"""The Aave V3 v3.3 stand-in on Anvil: the v3.3 close factor (50% of the user's total debt in base
currency, 100% at HF <= 0.95 or below 2000 USD), the MustNotLeaveDust rule (collateral left after
the protocol fee), protocol fee, bad debt, the latest release's rounding, the 1.19.3 view ABI,
checked against on-chain effects and an integer model of the maths in helpers.py
(aave-dao/aave-v3-origin v3.7 LiquidationLogic; GenericLogic with v3.0 rounding)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_abi import decode
from eth_utils import keccak
from keeper_devnet.deploy import Deployer, DeployError
from keeper_devnet.protocols.aave_v3.common import (
    DEFAULT_RESERVE_PARAMS,
    AaveDeployment,
    EModeParams,
    borrow,
    supply,
)
from keeper_devnet.protocols.aave_v3.standin import (
    atoken_artifact,
    configure_emode,
    deploy_aave_v33_standin,
    pool_artifact,
    provider_artifact,
    reserve_configuration,
)
from keeper_devnet.tokens import (
    Token,
    approve,
    balance_of,
    deploy_default_tokens,
    mint,
    set_price,
)

from tests.protocols.aave_v3.helpers import (
    Dust,
    Leg,
    ceil_div,
    liquidation,
    pmul,
)

UINT_MAX = 2**256 - 1
WAD = 10**18
USD = 10**8  # base currency unit

# ---------------------------------------------------------------------------------------------
# Integer model of Aave's maths (PercentageMath rounds half up; base values round down).














def health_factor(collateral: list[tuple[int, int, int]], debt_base: int) -> tuple[int, int, int]:
    """GenericLogic: (collateral base, value-weighted threshold, HF) for collateral given as
    [(value in base, ltv, threshold)] and the debt in base."""
    total = sum(v for v, _, _ in collateral)
    threshold = sum(v * t for v, _, t in collateral) // total if total else 0
    hf = UINT_MAX if debt_base == 0 else (pmul(total, threshold) * WAD + debt_base // 2) // debt_base
    return total, threshold, hf


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers


@dataclass
class Env:
    d: Deployer
    dep: AaveDeployment
    t: dict[str, Token]
    lender: str
    users: list[str]
    liquidator: str


@pytest.fixture(scope="module")
async def env(deployer) -> Env:
    tokens = await deploy_default_tokens(deployer)
    dep = await deploy_aave_v33_standin(deployer, tokens)
    accounts = await deployer.w3.eth.accounts
    lender, liquidator, users = accounts[20], accounts[21], list(accounts[22:26])
    for sym, amount in (("USDC", 5_000_000), ("WBTC", 100), ("WETH", 2_000)):
        await supply(deployer, dep, lender, tokens[sym], tokens[sym].units(amount))
    return Env(deployer, dep, tokens, lender, users, liquidator)


@pytest.fixture
async def e(env, snapshot):
    """The module's market inside a snapshot; Token.price (Python side) restored with the chain."""
    prices = {s: t.price for s, t in env.t.items()}
    yield env
    for s, t in env.t.items():
        t.price = prices[s]


async def pool_abi() -> list:
    return (await pool_artifact()).abi


async def call(e: Env, fn: str, *args):
    return await e.d.call(e.dep.pool, await pool_abi(), fn, *args)


async def account(e: Env, user: str) -> tuple:
    return tuple(await call(e, "getUserAccountData", user))


async def tx(e: Env, fn: str, *args, sender: str) -> dict:
    return await e.d.transact(e.dep.pool, await pool_abi(), fn, *args, sender=sender)


async def events(e: Env, receipt: dict, name: str) -> list[dict]:
    event = e.d.at(e.dep.pool, await pool_abi()).events[name]()
    topic = bytes.fromhex(event.topic.removeprefix("0x"))
    return [dict(event.process_log(log)["args"]) for log in receipt["logs"]
            if log["address"] == e.dep.pool and log["topics"] and bytes(log["topics"][0]) == topic]


async def expect_revert(coro, reason: str, args: tuple = ()) -> None:
    """Reverts with Aave's string code ``reason`` ("45") or the custom error ``reason`` ("X()",
    "Y(address,uint8)" with ``args``)."""
    with pytest.raises(DeployError) as info:
        await coro
    data = getattr(info.value.__cause__, "data", None)
    assert isinstance(data, str), repr(info.value)
    if reason.endswith(")"):
        assert data[:10] == "0x" + keccak(text=reason)[:4].hex(), repr(info.value)
        types = reason[reason.index("(") + 1:-1]
        if types:
            assert decode(types.split(","), bytes.fromhex(data[10:])) == args
    else:
        assert data[:10] == "0x08c379a0", repr(info.value)
        assert decode(["string"], bytes.fromhex(data[10:]))[0] == reason


async def a_balance(e: Env, sym: str, who: str) -> int:
    return await e.d.call(e.dep.extra["a_tokens"][sym], (await atoken_artifact()).abi, "balanceOf", who)


async def debt_balance(e: Env, sym: str, who: str) -> int:
    return await e.d.call(e.dep.extra["variable_debt"][sym], (await atoken_artifact()).abi, "balanceOf", who)


async def open_position(e: Env, user: str, collateral: dict[str, int], debt: dict[str, int]) -> None:
    """Supply and borrow amounts in token units."""
    for sym, amount in collateral.items():
        await supply(e.d, e.dep, user, e.t[sym], amount)
    for sym, amount in debt.items():
        await borrow(e.d, e.dep, user, e.t[sym], amount)


async def fund_liquidator(e: Env, debt: str) -> None:
    token = e.t[debt]
    await mint(e.d, token, e.liquidator, token.units(1_000_000 if debt == "USDC" else 1_000))
    await approve(e.d, token, e.liquidator, e.dep.pool, UINT_MAX)


async def liquidate(e: Env, coll: str, debt: str, user: str, amount: int, receive_a_token: bool = False,
                    fund: bool = True) -> dict:
    """liquidationCall from the liquidator, funded with plenty of the debt asset first."""
    if fund:
        await fund_liquidator(e, debt)
    return await tx(e, "liquidationCall", e.t[coll].address, e.t[debt].address, user, amount, receive_a_token,
                    sender=e.liquidator)


async def legs(e: Env, user: str, coll: str, debt: str) -> tuple[int, int, Leg, Leg]:
    """(HF, total debt base, collateral leg, debt leg) as the pool sees them now."""
    _, total_debt, _, _, _, hf = await account(e, user)
    c, d = e.t[coll], e.t[debt]
    return (hf, total_debt, Leg(c.price, c.decimals, await a_balance(e, coll, user)),
            Leg(d.price, d.decimals, await debt_balance(e, debt, user)))


async def liquidate_and_check(e: Env, coll: str, debt: str, user: str, amount: int,
                              bonus: int | None = None) -> tuple[int, int, int]:
    """Liquidate and check every on-chain effect against the model (with the reserve's bonus unless
    ``bonus``); returns (repaid, to liquidator, fee)."""
    hf, total_debt, c, d = await legs(e, user, coll, debt)
    p = DEFAULT_RESERVE_PARAMS[coll]
    repaid, to_liq, fee = liquidation("v3.3", hf, total_debt, c, d, bonus or p.liquidation_bonus, p.protocol_fee,
                                      amount)
    treasury = e.dep.extra["treasury"]
    await fund_liquidator(e, debt)
    before = (await balance_of(e.d, e.t[coll], e.liquidator), await a_balance(e, coll, treasury),
              await balance_of(e.d, e.t[debt], e.dep.extra["a_tokens"][debt]),
              await balance_of(e.d, e.t[debt], e.liquidator))
    receipt = await liquidate(e, coll, debt, user, amount, fund=False)
    assert await events(e, receipt, "LiquidationCall") == [{
        "collateralAsset": e.t[coll].address, "debtAsset": e.t[debt].address, "user": user,
        "debtToCover": repaid, "liquidatedCollateralAmount": to_liq, "liquidator": e.liquidator,
        "receiveAToken": False}]
    assert await balance_of(e.d, e.t[coll], e.liquidator) == before[0] + to_liq
    assert await a_balance(e, coll, treasury) == before[1] + fee  # protocol fee, as aTokens
    assert await balance_of(e.d, e.t[debt], e.dep.extra["a_tokens"][debt]) == before[2] + repaid
    assert await balance_of(e.d, e.t[debt], e.liquidator) == before[3] - repaid
    assert await a_balance(e, coll, user) == c.balance - to_liq - fee
    assert await debt_balance(e, debt, user) == d.balance - repaid
    return repaid, to_liq, fee


# ---------------------------------------------------------------------------------------------
# Views and user actions


async def test_views_follow_the_1_19_3_abi(e):
    d, dep = e.d, e.dep
    prov = (await provider_artifact()).abi
    assert await d.call(dep.provider, prov, "getPool") == dep.pool
    assert await d.call(dep.provider, prov, "getPriceOracle") == dep.oracle
    assert await d.call(dep.provider, prov, "getACLManager") == "0x" + "00" * 20
    assert await call(e, "getReservesList") == [e.t[s].address for s in ("USDC", "WBTC", "WETH")]
    for i, sym in enumerate(("USDC", "WBTC", "WETH")):
        r = await call(e, "getReserveData", e.t[sym].address)
        p = DEFAULT_RESERVE_PARAMS[sym]
        cfg = r[0][0]
        assert cfg == reserve_configuration(p, e.t[sym].decimals)
        assert (cfg & 0xFFFF, cfg >> 16 & 0xFFFF, cfg >> 32 & 0xFFFF, cfg >> 48 & 0xFF) == (
            p.ltv, p.liquidation_threshold, p.liquidation_bonus, e.t[sym].decimals)
        assert (cfg >> 56 & 1, cfg >> 57 & 1, cfg >> 58 & 1, cfg >> 60 & 1, cfg >> 152 & 0xFFFF) == (
            1, 0, 1, 0, p.protocol_fee)
        assert r[1] == r[3] == 10**27 and r[7] == i  # indexes 1 ray, reserve id
        assert (r[8], r[10]) == (dep.extra["a_tokens"][sym], dep.extra["variable_debt"][sym])
        assert r[9] == dep.extra["mock_stable_debt"]
        assert await d.call(r[9], (await atoken_artifact()).abi, "balanceOf", e.lender) == 0
    assert await call(e, "getUserEMode", e.lender) == 0
    assert await account(e, e.users[0]) == (0, 0, 0, 0, 0, UINT_MAX)


async def test_supply_borrow_account_data_withdraw_repay(e):
    d, user = e.d, e.users[0]
    weth, usdc = e.t["WETH"], e.t["USDC"]
    await mint(d, weth, user, 10 * WAD)
    await approve(d, weth, user, e.dep.pool, 10 * WAD)
    r = await tx(e, "supply", weth.address, 10 * WAD, user, 7, sender=user)
    assert await events(e, r, "ReserveUsedAsCollateralEnabled") == [{"reserve": weth.address, "user": user}]
    assert await events(e, r, "Supply") == [{"reserve": weth.address, "user": user, "onBehalfOf": user,
                                             "amount": 10 * WAD, "referralCode": 7}]
    assert await a_balance(e, "WETH", user) == 10 * WAD
    assert await balance_of(d, weth, e.dep.extra["a_tokens"]["WETH"]) == 2_010 * WAD  # the aToken holds it
    # 10 WETH at $3,000, LTV 80%: $24,000 borrowable; one USDC more is refused.
    await expect_revert(borrow(d, e.dep, user, usdc, 24_000 * 10**6 + 1), "36")
    r = await tx(e, "borrow", usdc.address, 20_000 * 10**6, 2, 0, user, sender=user)
    assert await events(e, r, "Borrow") == [{"reserve": usdc.address, "user": user, "onBehalfOf": user,
                                             "amount": 20_000 * 10**6, "interestRateMode": 2,
                                             "borrowRate": 0, "referralCode": 0}]
    assert (await call(e, "getUserConfiguration", user))[0] == 0b100000 | 0b1  # WETH collateral, USDC borrowed
    coll, thr, hf = health_factor([(30_000 * USD, 8000, 8250)], 20_000 * USD)
    assert await account(e, user) == (coll, 20_000 * USD, 4_000 * USD, thr, 8000, hf)
    assert hf == 1_237_500_000_000_000_000
    # Withdrawing collateral below HF 1 is refused; a safe withdrawal returns the amount.
    await expect_revert(tx(e, "withdraw", weth.address, 2 * WAD, user, sender=user), "35")
    r = await tx(e, "withdraw", weth.address, WAD, user, sender=user)
    assert await events(e, r, "Withdraw") == [{"reserve": weth.address, "user": user, "to": user, "amount": WAD}]
    # repay(max) repays the whole debt and clears the borrowing bit.
    await mint(d, usdc, user, 1)
    await approve(d, usdc, user, e.dep.pool, UINT_MAX)
    r = await tx(e, "repay", usdc.address, UINT_MAX, 2, user, sender=user)
    assert await events(e, r, "Repay") == [{"reserve": usdc.address, "user": user, "repayer": user,
                                            "amount": 20_000 * 10**6, "useATokens": False}]
    assert await balance_of(d, usdc, user) == 1
    assert (await call(e, "getUserConfiguration", user))[0] == 0b100000
    assert (await account(e, user))[5] == UINT_MAX


# ---------------------------------------------------------------------------------------------
# v3.3 close factor


async def test_half_of_total_debt_when_hf_above_095(e):
    user = e.users[0]
    await open_position(e, user, {"WETH": 10 * WAD}, {"USDC": 24_000 * 10**6})
    await set_price(e.d, e.t["WETH"], 2_850 * USD)  # HF = 28,500 x 0.825 / 24,000 = 0.9797
    hf = (await account(e, user))[5]
    assert 95 * 10**16 < hf < WAD and hf == health_factor([(28_500 * USD, 8000, 8250)], 24_000 * USD)[2]
    repaid, to_liq, fee = await liquidate_and_check(e, "WETH", "USDC", user, UINT_MAX)
    assert repaid == 12_000 * 10**6  # 50% of 24,000 USD of debt
    # 12,000 USD of WETH at 2,850 (4.210526315789473684) plus 5%, rounded down; the fee is 10% of the
    # bonus part (4.421052631578947368 - floor(/1.05) = 0.210526315789473685), rounded UP (v3.7:
    # 0.0210526315789473685 -> ...369, where v3.0's half-up percentDiv / percentMul give ...368).
    assert (to_liq + fee, fee) == (4_421_052_631_578_947_368, 21_052_631_578_947_369)


async def test_half_of_total_debt_is_shared_across_debt_reserves(e):
    # 14,000 USDC + 1/6 WBTC (~10,000 USD) of debt: 50% of the TOTAL is ~12,000 USD.
    user = e.users[0]
    await open_position(e, user, {"WETH": 10 * WAD}, {"USDC": 14_000 * 10**6, "WBTC": 16_666_666})
    await set_price(e.d, e.t["WETH"], 2_850 * USD)
    snap = await e.d.rpc("evm_snapshot", [])
    # USDC: the reserve's debt (14,000) is above half the total, so half the total applies,
    # computed in base currency: 23,999.9996 USD / 2 -> 11,999.9998 USDC (v3.0 would allow 7,000).
    repaid, _, _ = await liquidate_and_check(e, "WETH", "USDC", user, UINT_MAX)
    assert repaid == 11_999_999_800
    await e.d.rpc("evm_revert", [snap])
    # WBTC: its ~10,000 USD are below half the total, so all of it (v3.0 would allow half).
    repaid, _, _ = await liquidate_and_check(e, "WETH", "WBTC", user, UINT_MAX)
    assert repaid == 16_666_666
    assert (await call(e, "getUserConfiguration", user))[0] & 0b100 == 0  # no longer borrowing WBTC


async def test_full_close_factor_at_hf_095_or_below(e):
    user = e.users[0]
    await open_position(e, user, {"WETH": 10 * WAD}, {"USDC": 24_000 * 10**6})
    await set_price(e.d, e.t["WETH"], 2_700 * USD)  # HF = 0.928
    assert (await account(e, user))[5] <= 95 * 10**16
    repaid, _, _ = await liquidate_and_check(e, "WETH", "USDC", user, UINT_MAX)
    assert repaid == 24_000 * 10**6
    assert (await call(e, "getUserConfiguration", user))[0] == 0b100000  # debt cleared, collateral kept


async def test_full_close_factor_when_the_debt_reserve_is_below_2000_usd(e):
    user = e.users[0]
    await open_position(e, user, {"WETH": 10 * WAD}, {"USDC": 1_500 * 10**6, "WBTC": 37_000_000})
    await set_price(e.d, e.t["WETH"], 2_850 * USD)  # HF = 23,512.5 / 23,700 = 0.992
    assert 95 * 10**16 < (await account(e, user))[5] < WAD
    repaid, _, _ = await liquidate_and_check(e, "WETH", "USDC", user, UINT_MAX)
    assert repaid == 1_500 * 10**6  # all of it (v3.0: 750)


# ---------------------------------------------------------------------------------------------
# v3.3 dust rule


async def test_must_not_leave_dust_debt_side(e):
    user = e.users[0]
    await open_position(e, user, {"WETH": 10 * WAD}, {"USDC": 24_000 * 10**6})
    await set_price(e.d, e.t["WETH"], 2_700 * USD)
    # 500 USD of debt would be left: refused.
    await expect_revert(liquidate(e, "WETH", "USDC", user, 23_500 * 10**6), "MustNotLeaveDust()")
    assert await debt_balance(e, "USDC", user) == 24_000 * 10**6
    # Exactly 1,000 USD left is allowed.
    snap = await e.d.rpc("evm_snapshot", [])
    await liquidate_and_check(e, "WETH", "USDC", user, 23_000 * 10**6)
    assert await debt_balance(e, "USDC", user) == 1_000 * 10**6
    await e.d.rpc("evm_revert", [snap])
    # Clearing the debt completely passes.
    await liquidate_and_check(e, "WETH", "USDC", user, 24_000 * 10**6)
    assert await debt_balance(e, "USDC", user) == 0


async def test_must_not_leave_dust_collateral_side(e):
    # 0.05 WBTC (3,000 USD) + 10 WETH of collateral, 25,000 USDC of debt.
    user = e.users[0]
    await open_position(e, user, {"WBTC": 5_000_000, "WETH": 10 * WAD}, {"USDC": 25_000 * 10**6})
    await set_price(e.d, e.t["WETH"], 2_500 * USD)  # HF 0.915
    # Seizing ~2,450 USD of the 3,000 USD of WBTC would leave ~565 USD: refused.
    await expect_revert(liquidate(e, "WBTC", "USDC", user, 2_300 * 10**6), "MustNotLeaveDust()")
    # The collateral left is counted AFTER the protocol fee (the released code; v3.3.0 counted it
    # before). Repaying X USDC seizes 1.065 X USD of WBTC (the fee, 0.0065 X, included): X = 1,885
    # leaves 992.5 USD after the fee, 1,004.7 USD before it: refused.
    hf, total, c, d = await legs(e, user, "WBTC", "USDC")
    with pytest.raises(Dust):
        liquidation("v3.3", hf, total, c, d, 10_650, 1_000, 1_885 * 10**6)
    seized = (1_885 * 10**8 // 60_000) * 10_650 // 10_000  # WBTC sats, fee included
    fee = ceil_div((seized - seized * 10_000 // 10_650) * 1_000, 10_000)
    assert (5_000_000 - seized) * 60_000 < 1_000 * USD <= (5_000_000 - seized + fee) * 60_000
    await expect_revert(liquidate(e, "WBTC", "USDC", user, 1_885 * 10**6), "MustNotLeaveDust()")
    snap = await e.d.rpc("evm_snapshot", [])
    # X = 1,877 leaves 1,000.9 USD after the fee: accepted.
    _, to_liq, fee = await liquidate_and_check(e, "WBTC", "USDC", user, 1_877 * 10**6)
    left = 5_000_000 - to_liq - fee
    assert 1_000 * USD <= left * 60_000 < 1_001 * USD
    await e.d.rpc("evm_revert", [snap])
    # Taking all the WBTC (the collateral reserve cleared) passes.
    repaid, to_liq, fee = await liquidate_and_check(e, "WBTC", "USDC", user, UINT_MAX)
    assert to_liq + fee == 5_000_000 and repaid == ceil_div(3_000 * 10**6 * 10_000, 10_650)  # percentDivCeil
    assert (await call(e, "getUserConfiguration", user))[0] == 0b100001  # WBTC no longer collateral


# ---------------------------------------------------------------------------------------------
# Other liquidation paths


async def test_liquidation_reverts_with_aave_codes(e):
    user = e.users[0]
    await open_position(e, user, {"WETH": 10 * WAD}, {"USDC": 20_000 * 10**6})
    await expect_revert(liquidate(e, "WETH", "USDC", user, UINT_MAX), "45")  # healthy
    await set_price(e.d, e.t["WETH"], 2_000 * USD)
    await expect_revert(liquidate(e, "WETH", "WBTC", user, UINT_MAX), "47")  # WBTC not borrowed
    await expect_revert(liquidate(e, "WBTC", "USDC", user, UINT_MAX), "46")  # WBTC not collateral


async def test_receive_a_token(e):
    user = e.users[0]
    await open_position(e, user, {"WETH": 10 * WAD}, {"USDC": 24_000 * 10**6})
    await set_price(e.d, e.t["WETH"], 2_700 * USD)
    hf, total, c, d = await legs(e, user, "WETH", "USDC")
    repaid, to_liq, fee = liquidation("v3.3", hf, total, c, d, 10_500, 1_000, UINT_MAX)
    r = await liquidate(e, "WETH", "USDC", user, UINT_MAX, receive_a_token=True)
    assert [(x["debtToCover"], x["liquidatedCollateralAmount"], x["receiveAToken"])
            for x in await events(e, r, "LiquidationCall")] == [(repaid, to_liq, True)]
    assert await a_balance(e, "WETH", e.liquidator) == to_liq
    # v3.6+: the aTokens received are not enabled as the liquidator's collateral
    assert await events(e, r, "ReserveUsedAsCollateralEnabled") == []
    assert (await call(e, "getUserConfiguration", e.liquidator))[0] == 0


async def test_bad_debt_is_burned_when_the_last_collateral_goes(e):
    user = e.users[0]
    await open_position(e, user, {"WBTC": 10_000_000}, {"USDC": 4_000 * 10**6})  # 0.1 WBTC
    await set_price(e.d, e.t["WBTC"], 30_000 * USD)  # 3,000 USD of collateral for 4,000 of debt
    hf, total, c, d = await legs(e, user, "WBTC", "USDC")
    repaid, to_liq, fee = liquidation("v3.3", hf, total, c, d, 10_650, 1_000, UINT_MAX)
    assert to_liq + fee == 10_000_000 and repaid == ceil_div(3_000 * 10**6 * 10_000, 10_650)  # percentDivCeil
    r = await liquidate(e, "WBTC", "USDC", user, UINT_MAX)
    assert [(x["debtToCover"], x["liquidatedCollateralAmount"]) for x in await events(e, r, "LiquidationCall")] \
        == [(repaid, to_liq)]
    # v3.3: the unpaid rest is burned too and booked as the reserve's deficit.
    assert await events(e, r, "DeficitCreated") == [
        {"user": user, "debtAsset": e.t["USDC"].address, "amountCreated": 4_000 * 10**6 - repaid}]
    assert await call(e, "getReserveDeficit", e.t["USDC"].address) == 4_000 * 10**6 - repaid
    assert await debt_balance(e, "USDC", user) == 0
    assert (await call(e, "getUserConfiguration", user))[0] == 0
    assert await account(e, user) == (0, 0, 0, 0, 0, UINT_MAX)


# ---------------------------------------------------------------------------------------------
# eMode as from v3.2: categories, collateral and borrowable bitmaps

# Category 1: WETH collateral at 90% / 93% and a 3% bonus (the reserve's: 80% / 82.5%, 5%), USDC
# borrowable. Category 2: WETH and WBTC collateral, 8% bonus, USDC and WBTC borrowable.
CAT1 = EModeParams(9_000, 9_300, 10_300, collateral=("WETH",), borrowable=("USDC",), label="low bonus")
CAT2 = EModeParams(8_500, 8_800, 10_800, collateral=("WETH", "WBTC"), borrowable=("USDC", "WBTC"), label="high")


async def with_categories(e: Env) -> None:
    await configure_emode(e.d, e.dep, 1, CAT1)
    await configure_emode(e.d, e.dep, 2, CAT2)


async def test_emode_category_views(e):
    await with_categories(e)
    assert await call(e, "getEModeCategoryCollateralConfig", 1) == (9_000, 9_300, 10_300)
    assert await call(e, "getEModeCategoryCollateralBitmap", 1) == 0b100  # WETH is reserve 2
    assert await call(e, "getEModeCategoryBorrowableBitmap", 1) == 0b001  # USDC is reserve 0
    assert await call(e, "getEModeCategoryCollateralBitmap", 2) == 0b110
    assert await call(e, "getEModeCategoryLabel", 2) == "high"
    assert await call(e, "getEModeCategoryData", 2) == (8_500, 8_800, 10_800, "0x" + "00" * 20, "high")
    # The reserve configuration's old eMode bits (168-175) are not used from v3.2 on.
    assert (await call(e, "getReserveData", e.t["WETH"].address))[0][0] >> 168 & 0xFF == 0
    await expect_revert(tx(e, "configureEModeCategoryCollateralBitmap", 0, 1, sender=e.d.sender),
                        "EModeCategoryReserved()")


async def test_set_user_emode_rules(e):
    await with_categories(e)
    user = e.users[0]
    await open_position(e, user, {"WETH": 10 * WAD}, {"WBTC": 10_000_000})  # 6,000 USD of WBTC debt
    await expect_revert(tx(e, "setUserEMode", 3, sender=user), "InconsistentEModeCategory()")
    # WBTC is not borrowable in category 1.
    await expect_revert(tx(e, "setUserEMode", 1, sender=user), "InvalidDebtInEmode(address,uint8)",
                        (e.t["WBTC"].address.lower(), 1))
    r = await tx(e, "setUserEMode", 2, sender=user)
    assert await events(e, r, "UserEModeSet") == [{"user": user, "categoryId": 2}]
    assert await call(e, "getUserEMode", user) == 2
    # In category 2 the WETH collateral counts at 85% / 88%.
    coll, thr, hf = health_factor([(30_000 * USD, 8_500, 8_800)], 6_000 * USD)
    assert await account(e, user) == (coll, 6_000 * USD, pmul(coll, 8_500) - 6_000 * USD, thr, 8_500, hf)
    # Borrowing in eMode: only what the category's borrowable bitmap holds (WETH is not in it).
    await expect_revert(borrow(e.d, e.dep, user, e.t["WETH"], WAD), "NotBorrowableInEMode()")
    # Up to the category's ltv: 85% of 30,000 = 25,500 USD, 6,000 of it already borrowed.
    await borrow(e.d, e.dep, user, e.t["USDC"], 19_500 * 10**6)
    await expect_revert(borrow(e.d, e.dep, user, e.t["USDC"], 1), "36")
    # Leaving eMode would put the health factor below 1 (80% / 82.5% outside): refused.
    await expect_revert(tx(e, "setUserEMode", 0, sender=user), "35")


async def test_emode_bonus_only_for_collateral_in_the_category_bitmap(e):
    """Category 1 covers WETH, not WBTC: liquidating WETH pays the category's 3% bonus, WBTC its
    reserve's 6.5% (LiquidationLogic: the category bonus when the collateral is in the bitmap)."""
    await with_categories(e)
    user = e.users[0]
    await tx(e, "setUserEMode", 1, sender=user)
    await open_position(e, user, {"WETH": 10 * WAD, "WBTC": 10_000_000}, {"USDC": 31_000 * 10**6})
    # 30,000 x 93% + 6,000 x 75% = 32,400 of adjusted collateral for 31,000 of debt: HF 1.045.
    assert (await account(e, user))[5] == health_factor([(30_000 * USD, 9_000, 9_300),
                                                         (6_000 * USD, 7_000, 7_500)], 31_000 * USD)[2]
    await set_price(e.d, e.t["WETH"], 2_750 * USD)  # HF 0.970
    assert 95 * 10**16 < (await account(e, user))[5] < WAD
    snap = await e.d.rpc("evm_snapshot", [])
    repaid, to_liq, fee = await liquidate_and_check(e, "WETH", "USDC", user, 10_000 * 10**6, bonus=10_300)
    assert (repaid, to_liq + fee) == (10_000 * 10**6, (10_000 * 10**18 // 2_750) * 10_300 // 10_000)
    await e.d.rpc("evm_revert", [snap])
    repaid, to_liq, fee = await liquidate_and_check(e, "WBTC", "USDC", user, 1_000 * 10**6, bonus=10_650)
    assert to_liq + fee == (1_000 * 10**8 // 60_000) * 10_650 // 10_000  # 1,774,999 sats


# ---------------------------------------------------------------------------------------------
# The latest release's rounding (aave-v3-origin v3.5 / v3.7)


async def test_collateral_and_fee_rounding_as_released(e):
    """1,000.004 USDC at WBTC 50,000 is 2,000,008 sats; with the 6.5% bonus 2,130,008.52: rounded
    down (percentMulFloor; half up: ...009). Its base part 2,130,008 / 1.065 = 2,000,007.5:
    rounded down (percentDivFloor), so the bonus part is 130,001 (half up: 130,000); the fee, 10%
    of it, 13,000.1: rounded up (percentMulCeil) to 13,001 (half up: 13,000)."""
    user = e.users[0]
    await open_position(e, user, {"WBTC": 50_000_000}, {"USDC": 21_000 * 10**6})
    await set_price(e.d, e.t["WBTC"], 50_000 * USD)  # HF 0.893
    repaid, to_liq, fee = await liquidate_and_check(e, "WBTC", "USDC", user, 1_000_004_000)
    assert (repaid, to_liq + fee, fee) == (1_000_004_000, 2_130_008, 13_001)


async def test_close_factor_values_the_reserve_debt_rounding_up(e):
    """The 2,000 USD threshold and the "more than half of the total debt" test value the reserve's
    debt rounding up (MathUtils.mulDivCeil), and so does the dust rule's debt left. With the 50%
    close factor a reserve debt near 2,000 USD can only be repaid in part, leaving >= 1,000 USD."""
    a, b = e.users[0], e.users[1]
    # a: 1.111111111111111111 WETH of debt: 1,999.99999999(99) USD at 1,800, 2,000 rounded up.
    await open_position(e, a, {"WBTC": 10_000_000}, {"WETH": 1_111_111_111_111_111_111, "USDC": 800 * 10**6})
    # b: one wei more: 2,000.00000000(00016) USD, against as much USDC debt (4,000 USD in all).
    await open_position(e, b, {"WBTC": 13_000_000}, {"WETH": 1_111_111_111_111_111_112, "USDC": 2_000 * 10**6})
    await set_price(e.d, e.t["WETH"], 1_800 * USD)
    await set_price(e.d, e.t["WBTC"], 36_500 * USD)  # a: HF 0.978
    hf, total, c, d = await legs(e, a, "WBTC", "WETH")
    assert 95 * 10**16 < hf < WAD and d.base(d.balance) < 2_000 * USD <= d.base_up(d.balance)
    # At 2,000 USD the close factor is 50% of the 2,800 USD total: repaying max would leave 600
    # USD of WETH debt (rounded down, 100% would be allowed and clear it).
    await expect_revert(liquidate(e, "WBTC", "WETH", a, UINT_MAX), "MustNotLeaveDust()")
    # Leaving 0.555555555555555555 WETH: 999.99999999(99) USD, 1,000 rounded up: accepted.
    left = 555_555_555_555_555_555
    assert d.base(left) < 1_000 * USD == d.base_up(left)
    repaid, _, _ = await liquidate_and_check(e, "WBTC", "WETH", a, d.balance - left)
    assert await debt_balance(e, "WETH", a) == left
    await set_price(e.d, e.t["WBTC"], 40_000 * USD)  # b: HF 0.975
    hf, total, c, d = await legs(e, b, "WBTC", "WETH")
    assert 95 * 10**16 < hf < WAD and total == 4_000 * USD and d.base(d.balance) == total // 2 < d.base_up(d.balance)
    # Rounded up, b's WETH debt is above half the total: capped at 2,000 USD of WETH, one wei
    # short of all of it, which leaves dust.
    with pytest.raises(Dust):
        liquidation("v3.3", hf, total, c, d, 10_650, 1_000, UINT_MAX)
    await expect_revert(liquidate(e, "WBTC", "WETH", b, UINT_MAX), "MustNotLeaveDust()")


async def test_half_of_total_debt_rounds_half_up(e):
    """The close factor's 50% of the total debt stays the half-up percentMul (v3.7): 16,250.00000001
    USD of debt gives 8,125.00000001 USD (812,500,000,001 base units; rounded down: ...000)."""
    user = e.users[0]
    weth = 5 * 10**18 + 3_508_772  # 14,250.00000001 USD at 2,850 (rounded down)
    await open_position(e, user, {"WBTC": 50_000_000}, {"WETH": weth, "USDC": 2_000 * 10**6})
    await set_price(e.d, e.t["WETH"], 2_850 * USD)
    await set_price(e.d, e.t["WBTC"], 42_700 * USD)  # HF 0.985
    hf, total, c, d = await legs(e, user, "WBTC", "WETH")
    assert total == 1_625_000_000_001 and 95 * 10**16 < hf < WAD
    repaid, _, _ = await liquidate_and_check(e, "WBTC", "WETH", user, UINT_MAX)
    assert repaid == 812_500_000_001 * 10**18 // (2_850 * USD)
