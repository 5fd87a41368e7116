"""Aave V3 trigger prices: for each asset a user holds or owes, the oracle price of that asset at
which the user may become liquidatable, every other price held (keeper.protocols.price_index).

The Pool's health factor (GenericLogic.calculateUserAccountData, as keeper.protocols.aave_v3.accrual
computes it): each balance valued rounding down on its own (value = amount x price / 10^decimals),
the value-weighted liquidation threshold (eMode's for the user's category) rounded down,
HF = percentMul(collateral, threshold) wadDiv debt; liquidatable when HF < 1 (which needs
percentMul(collateral, threshold) < debt). With one price p moving, a LOWER bound of the left side
and an UPPER bound of the debt are linear in p:

    percentMul(coll, thr) >= (weighted - coll - 5000) / 10^4   (thr = floor(weighted / coll);
                                                                 exactly thr = LT with one collateral:
                                                                 the ``- coll`` term is dropped)
    weighted >= weighted_others + LT_x x c_x x p / unit - LT_x   (the asset's value rounded down)
    coll <= coll_others + c_x x p / unit
    debt <= g x (debt_others + n_other_debts + d_x x p / unit)   (each other debt rounded down; g
                                                                 the interest margin below)

so ``lower(p) >= upper(p)`` (the user cannot be liquidatable) is K x p >= R in integers, and the
trigger is the bound of p it gives, rounded toward catching the user: a collateral-like asset
(K > 0) gives BELOW ceil(R / K), a debt-like one (K < 0) ABOVE floor(R / K). The interest margin
g = (10^4 + margin_bps) / 10^4 keeps the trigger valid while the debt grows by less than that
(collateral grows too, which only helps): the mirror recomputes everyone before the debt indexes
have grown that much.
"""
from __future__ import annotations

from keeper.protocols.aave_v3.accrual import (
    UINT_MAX,
    AccountData,
    MirrorUser,
    ReserveTerms,
    percent_mul,
    ray_mul,
    wad_div,
)
from keeper.protocols.price_index import Kind, Trigger, always

PERCENT = 10_000


def trigger(k: int, r: int) -> Trigger | None:
    """The trigger of ``K x p >= R`` (the user is safe wherever it holds); None when it holds at
    every price p >= 0."""
    if k > 0:
        return Trigger(Kind.BELOW, -(-r // k)) if r > 0 else None
    if k < 0:
        return Trigger(Kind.ABOVE, r // k)  # floor((-R) / (-K)): safe for p <= it
    return always() if r > 0 else None


def account_with_triggers(user: MirrorUser, terms: dict[str, ReserveTerms], emode_threshold: int,
                          margin_bps: int) -> tuple[AccountData, dict[str, Trigger]]:
    """The user's account data (exactly accrual.account_data) and its trigger per asset."""
    if user.config == 0:
        return AccountData(0, 0, 0, UINT_MAX), {}
    # asset -> (unit, collateral balance counted, its LT, its value, debt balance, its value)
    legs: list[tuple[str, int, int, int, int, int, int]] = []
    coll = debt = weighted = 0
    n_coll = n_debt = 0
    for asset, t in terms.items():
        bits = (user.config >> (2 * t.id)) & 3
        if not bits:
            continue
        unit = 10**t.decimals
        cb = lt = cv = db = dv = 0
        if bits & 2 and t.liquidation_threshold:
            cb = ray_mul(user.scaled_collateral.get(asset, 0), t.income)
            cv = cb * t.price // unit
            coll += cv
            in_emode = user.emode != 0 and user.emode == t.emode_category
            lt = emode_threshold if in_emode else t.liquidation_threshold
            weighted += cv * lt
            n_coll += cb > 0
        if bits & 1:
            scaled = user.scaled_debt.get(asset, 0)
            db = (ray_mul(scaled, t.debt_index) if scaled else 0) + user.stable_debt.get(asset, 0)
            dv = t.price * db // unit
            debt += dv
            n_debt += db > 0
        if cb or db:
            legs.append((asset, unit, cb, lt, cv, db, dv))
    threshold = weighted // coll if coll else 0
    hf = UINT_MAX if debt == 0 else wad_div(percent_mul(coll, threshold), debt)
    data = AccountData(coll, debt, threshold, hf)
    if n_debt == 0:
        return data, {}  # no debt at any price
    e = 0 if n_coll <= 1 else 1  # one collateral: the threshold is its LT exactly
    g = PERCENT + margin_bps
    out: dict[str, Trigger] = {}
    for asset, unit, cb, lt, cv, db, dv in legs:
        coll0, weighted0, debt0 = coll - cv, weighted - cv * lt, debt - dv
        others = n_debt - (db > 0)
        k = cb * (lt - e) - g * db
        r = unit * (g * (debt0 + others) - (weighted0 - (lt if cb else 0) - 5_000 - e * coll0))
        found = trigger(k, r)
        if found is not None:
            out[asset] = found
    return data, out

