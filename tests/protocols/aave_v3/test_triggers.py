"""Aave V3 trigger prices (keeper.protocols.aave_v3.triggers), node-free, on random users (one to
three collaterals, one or two debts, some in eMode, an asset both supplied and borrowed): after a
move of one price, either way, the index's candidates contain every user the Pool's maths
(accrual.account_data) finds liquidatable, also once interest has accrued within the margin; the
candidates that are not liquidatable are within a hair of it; and they are few next to N."""
from __future__ import annotations

import random
from dataclasses import replace

import pytest

from keeper.protocols.aave_v3.accrual import RAY, MirrorUser, ReserveTerms, account_data
from keeper.protocols.aave_v3.triggers import account_with_triggers
from keeper.protocols.price_index import LiquidationPriceIndex

HF_ONE = 10**18
EMODE, EMODE_LT = 1, 9_300
# asset -> (id, decimals, liquidation threshold, eMode category, price 8 dec)
RESERVES = {"WETH": (0, 18, 8_250, 1, 3_000 * 10**8), "WSTETH": (1, 18, 8_000, 1, 3_500 * 10**8),
            "WBTC": (2, 8, 7_800, 0, 60_000 * 10**8), "USDC": (3, 6, 8_700, 0, 10**8),
            "DAI": (4, 18, 0, 0, 10**8)}  # DAI: LT 0, never counted as collateral


def terms(prices: dict[str, int], debt_growth: int = RAY, income_growth: int = RAY) -> dict[str, ReserveTerms]:
    return {a: ReserveTerms(id=i, decimals=d, liquidation_threshold=lt, emode_category=cat, price=prices[a],
                            income=RAY * 102 // 100 * income_growth // RAY,
                            debt_index=RAY * 105 // 100 * debt_growth // RAY)
            for a, (i, d, lt, cat, _) in RESERVES.items()}


def random_user(rng: random.Random, prices: dict[str, int]) -> MirrorUser:
    """Collateral worth 1k-1M USD, debt sized for an HF spread over about 1.0-3.0."""
    u = MirrorUser(emode=EMODE if rng.random() < 0.2 else 0)
    colls = rng.sample(["WETH", "WSTETH", "WBTC", "USDC", "DAI"], rng.choice([1, 1, 2, 3]))
    debts = rng.sample(["USDC", "DAI", "WETH", "WBTC"], rng.choice([1, 1, 2]))
    worth = 0.0
    for a in colls:
        _, dec, lt, _, p = RESERVES[a]
        usd = rng.uniform(1e3, 1e6)
        u.scaled_collateral[a] = int(usd * 1e8 / p * 10**dec)
        u.config |= 2 << (2 * RESERVES[a][0])
        worth += usd * lt / 1e4
    if worth == 0:
        worth = 1e4  # only DAI supplied: a debt no collateral backs (liquidatable at once)
    target = worth / rng.uniform(1.0, 3.0)
    for a in debts:
        _, dec, _, _, p = RESERVES[a]
        u.scaled_debt[a] = int(target / len(debts) * 1e8 / p * 10**dec)
        u.config |= 1 << (2 * RESERVES[a][0])
    return u


def build(n: int, seed: int, margin: int):
    rng = random.Random(seed)
    prices = {a: r[4] for a, r in RESERVES.items()}
    users = {f"u{i}": random_user(rng, prices) for i in range(n)}
    idx = LiquidationPriceIndex()
    t = terms(prices)
    for name, u in users.items():
        data, trig = account_with_triggers(u, t, EMODE_LT, margin)
        assert data == account_data(u, t, EMODE_LT)  # the same account data as the mirror's maths
        idx.put(name, trig)
    return rng, prices, users, idx


@pytest.mark.parametrize("margin", [0, 10])
def test_candidates_contain_every_liquidatable_user_after_one_move(margin):
    rng, prices, users, idx = build(3_000, 5 + margin, margin)
    total_candidates = total_false = total_liquidatable = total_exposed = 0
    for trial in range(24):
        asset = rng.choice(["WETH", "WSTETH", "WBTC", "USDC", "DAI"])
        factor = rng.choice([0.5, 0.7, 0.9, 0.97, 0.995, 1.005, 1.03, 1.1, 1.4, 2.0])
        new = dict(prices, **{asset: int(prices[asset] * factor)})
        # interest within the margin (debt +margin bps at most, collateral income too): still caught
        growth = RAY + RAY * margin // 10_000 * rng.randint(0, 100) // 100
        income = RAY + (growth - RAY) // 2
        t = terms(new, debt_growth=growth, income_growth=income)
        t_old = terms(prices, debt_growth=growth, income_growth=income)
        exposed = {n for n, u in users.items() if asset in u.assets()}  # the others' HF did not move
        # liquidatable after the move, not before it (those the mirror re-checks anyway: HF < 1.05)
        liquidatable = {n for n in exposed if account_data(users[n], t, EMODE_LT).health_factor < HF_ONE
                        and account_data(users[n], t_old, EMODE_LT).health_factor >= HF_ONE}
        candidates = idx.at_risk(asset, new[asset])
        assert liquidatable <= candidates, (trial, asset, factor, sorted(liquidatable - candidates)[:5])
        false = {n for n in candidates if account_data(users[n], t, EMODE_LT).health_factor >= HF_ONE}
        for n in false:  # the bound is tight: a false candidate is within a hair of 1
            assert account_data(users[n], t, EMODE_LT).health_factor < HF_ONE * (10_000 + margin + 5) // 10_000
        total_candidates += len(candidates)
        total_false += len(false)
        total_liquidatable += len(liquidatable)
        total_exposed += len(exposed)
    assert total_liquidatable > 100  # the moves did make some users liquidatable
    assert total_candidates < total_exposed // 5  # few next to the users exposed (moves up to 2x)
    assert total_false < total_exposed // 200  # and almost all of them truly liquidatable


def test_an_asset_both_supplied_and_borrowed_and_a_lone_collateral():
    prices = {a: r[4] for a, r in RESERVES.items()}
    t = terms(prices)
    # WETH supplied 10 (LT 82.5%), WETH borrowed 2 and USDC borrowed 15k: WETH weighs on the collateral side
    u = MirrorUser(config=(3 << 0) | (1 << 6), scaled_collateral={"WETH": 10 * 10**18},
                   scaled_debt={"WETH": 2 * 10**18, "USDC": 15_000 * 10**6})
    _, trig = account_with_triggers(u, t, EMODE_LT, 0)
    below = trig["WETH"]
    assert below.kind.value == "below" and "USDC" in trig and trig["USDC"].kind.value == "above"

    def hf(p: int) -> int:
        return account_data(u, terms(dict(prices, WETH=p)), EMODE_LT).health_factor

    assert hf(below.price) >= HF_ONE > hf(below.price * 999 // 1_000)  # the trigger is within 0.1%
    usdc = trig["USDC"]

    def hf_usdc(p: int) -> int:
        return account_data(u, terms(dict(prices, USDC=p)), EMODE_LT).health_factor

    assert hf_usdc(usdc.price) >= HF_ONE > hf_usdc(usdc.price * 1_001 // 1_000)
    # no debt: no trigger at all
    assert account_with_triggers(replace(u, config=2, scaled_debt={}), t, EMODE_LT, 0)[1] == {}
