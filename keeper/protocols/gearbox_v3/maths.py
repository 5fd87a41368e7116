"""Gearbox V3.1 integer maths, as the contracts do it (@gearbox-protocol/core-v3 1.52.1):
PriceOracleV3.convert/convertToUSD, CollateralLogic.calcCollateral (quota-capped LT-weighted value),
CreditLogic.calcDecrease (repayment order: quota fees -> quota interest -> base interest -> principal),
CreditFacadeV3._calcPartialLiquidationPayments, and the search for the partial liquidation that pays
the liquidator most while the facade's checks pass:

- seized = convert(amount, underlying -> token) x 10000 / liquidationDiscount, taken from the account;
- fee = amount x feeLiquidation / 10000 goes to the treasury, amount - fee repays debt (manageDebt);
- the account must hold the seized amount, keep debt >= minDebt (debt 0 reverts while quotas are
  active), and pass the full collateral check at HF >= 1 (twvUSD >= totalDebtUSD) afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass

PERCENTAGE_FACTOR = 10_000
RAY = 10**27


@dataclass(frozen=True)
class Price:
    """PriceOracleV3's price (USD, 8 decimals) and scale (10 ** token decimals) of one token."""
    price: int
    scale: int


def to_usd(amount: int, p: Price) -> int:
    """PriceOracleV3.convertToUSD."""
    return amount * p.price // p.scale


def convert(amount: int, frm: Price, to: Price) -> int:
    """PriceOracleV3.convert(amount, tokenFrom, tokenTo)."""
    return amount * frm.price * to.scale // (to.price * frm.scale)


@dataclass(frozen=True)
class Fees:
    """CreditManagerV3.fees() (bps)."""
    fee_interest: int
    fee_liquidation: int
    liquidation_discount: int
    fee_liquidation_expired: int
    liquidation_discount_expired: int


@dataclass(frozen=True)
class Debt:
    """The debt part of calcDebtAndCollateral (CollateralDebtData)."""
    debt: int
    index_now: int
    index_last_update: int
    cumulative_quota_interest: int  # includes the quota keeper's outstanding interest
    accrued_interest: int  # base + quota interest
    accrued_fees: int  # quota fees + feeInterest on both interests

    @property
    def total(self) -> int:
        """CreditLogic.calcTotalDebt."""
        return self.debt + self.accrued_interest + self.accrued_fees

    def base_interest(self) -> int:
        return self.accrued_interest - self.cumulative_quota_interest

    def quota_fees(self, fee_interest: int) -> int:
        """creditAccountInfo.quotaFees, recovered from accruedFees = quotaFees + baseInterest x fi
        / 10000 + quotaInterest x fi / 10000 (CreditManagerV3._calcDebtAndCollateral)."""
        return (self.accrued_fees - self.base_interest() * fee_interest // PERCENTAGE_FACTOR
                - self.cumulative_quota_interest * fee_interest // PERCENTAGE_FACTOR)


def calc_accrued_interest(amount: int, index_last_update: int, index_now: int) -> int:
    """CreditLogic.calcAccruedInterest."""
    if amount == 0:
        return 0
    return amount * index_now // index_last_update - amount


def calc_decrease(amount: int, debt: int, index_now: int, index_last_update: int, cumulative_quota_interest: int,
                  quota_fees: int, fee_interest: int) -> tuple[int, int, int, int, int]:
    """CreditLogic.calcDecrease -> (newDebt, newCumulativeIndex, profit, newCumulativeQuotaInterest,
    newQuotaFees)."""
    to_repay = amount
    profit = 0
    new_quota_fees = 0
    if quota_fees != 0:
        if to_repay > quota_fees:
            to_repay -= quota_fees
            profit = quota_fees
        else:
            new_quota_fees = quota_fees - to_repay
            profit = to_repay
            to_repay = 0
    if cumulative_quota_interest != 0 and to_repay != 0:
        quota_profit = cumulative_quota_interest * fee_interest // PERCENTAGE_FACTOR
        if to_repay >= cumulative_quota_interest + quota_profit:
            to_repay -= cumulative_quota_interest + quota_profit
            profit += quota_profit
            new_cqi = 0
        else:
            to_pool = to_repay * PERCENTAGE_FACTOR // (PERCENTAGE_FACTOR + fee_interest)
            profit += to_repay - to_pool
            to_repay = 0
            new_cqi = cumulative_quota_interest - to_pool
    else:
        new_cqi = cumulative_quota_interest
    if to_repay != 0:
        interest = calc_accrued_interest(debt, index_last_update, index_now)
        interest_profit = interest * fee_interest // PERCENTAGE_FACTOR
        if to_repay >= interest + interest_profit:
            to_repay -= interest + interest_profit
            profit += interest_profit
            new_index = index_now
        else:
            to_pool = to_repay * PERCENTAGE_FACTOR // (PERCENTAGE_FACTOR + fee_interest)
            profit += to_repay - to_pool
            to_repay = 0
            new_index = (10**9 * index_now * index_last_update
                         // (10**9 * index_now - 10**9 * to_pool * index_last_update // debt))
    else:
        new_index = index_last_update
    return debt - to_repay, new_index, profit, new_cqi, new_quota_fees


def debt_after_repay(d: Debt, amount: int, fee_interest: int) -> Debt:
    """The account's debt data right after CreditManagerV3.manageDebt(DECREASE_DEBT, amount) in the
    same block (a repayment >= the total debt repays it all)."""
    if amount >= d.total:
        return Debt(0, d.index_now, d.index_now, 0, 0, 0)
    new_debt, new_index, _, new_cqi, new_qf = calc_decrease(
        amount, d.debt, d.index_now, d.index_last_update, d.cumulative_quota_interest,
        d.quota_fees(fee_interest), fee_interest)
    base = calc_accrued_interest(new_debt, new_index, d.index_now)
    fees = new_qf + base * fee_interest // PERCENTAGE_FACTOR + new_cqi * fee_interest // PERCENTAGE_FACTOR
    return Debt(new_debt, d.index_now, new_index, new_cqi, base + new_cqi, fees)


@dataclass(frozen=True)
class Holding:
    """One token on a credit account: balance, oracle price, current LT and quota (underlying units;
    None for the underlying itself, which is not quoted)."""
    token: str
    balance: int
    price: Price
    lt: int
    quota: int | None


def token_collateral(h: Holding, underlying: Price, balance: int | None = None) -> tuple[int, int]:
    """CollateralLogic.calcOneTokenCollateral: (valueUSD, min(valueUSD x LT, quotaUSD))."""
    bal = h.balance if balance is None else balance
    if bal == 0:
        return 0, 0
    value = to_usd(bal, h.price)
    weighted = value * h.lt // PERCENTAGE_FACTOR
    if h.quota is not None:
        underlying_price_ray = to_usd(RAY, underlying)
        weighted = min(weighted, h.quota * underlying_price_ray // RAY)
    return value, weighted


def collateral(holdings: list[Holding], underlying: Price) -> tuple[int, int]:
    """CollateralLogic.calcCollateral without a target: (totalValueUSD, twvUSD)."""
    total = twv = 0
    for h in holdings:
        v, w = token_collateral(h, underlying)
        total += v
        twv += w
    return total, twv


@dataclass(frozen=True)
class Account:
    """What the partial-liquidation search needs about one credit account."""
    debt: Debt
    holdings: dict[str, Holding]  # token -> holding (the underlying included, quota None)
    underlying: str
    fees: Fees
    min_debt: int

    @property
    def underlying_price(self) -> Price:
        return self.holdings[self.underlying].price

    def total_debt_usd(self, debt: Debt | None = None) -> int:
        return to_usd((debt or self.debt).total, self.underlying_price)

    def twv_usd(self) -> int:
        return collateral(list(self.holdings.values()), self.underlying_price)[1]


@dataclass(frozen=True)
class Partial:
    """One partiallyLiquidateCreditAccount(token, amount) and its predicted result."""
    token: str
    amount: int  # repaidAmount argument: underlying the liquidator pays
    repaid: int  # amount - fee, repays debt
    fee: int  # to the treasury
    seized: int  # collateral to the liquidator
    debt_after: Debt
    twv_usd_after: int
    total_debt_usd_after: int
    profit_usd: int  # seized value - amount, at the oracle's prices (8 decimals)

    @property
    def hf_after(self) -> float:
        return self.twv_usd_after / self.total_debt_usd_after if self.total_debt_usd_after else float("inf")


def partial_payments(amount: int, underlying: Price, token: Price, fees: Fees) -> tuple[int, int, int]:
    """CreditFacadeV3._calcPartialLiquidationPayments (unhealthy, not expired) -> (repaid, fee, seized)."""
    seized = convert(amount, underlying, token) * PERCENTAGE_FACTOR // fees.liquidation_discount
    fee = amount * fees.fee_liquidation // PERCENTAGE_FACTOR
    return amount - fee, fee, seized


def simulate_partial(acc: Account, token: str, amount: int) -> Partial:
    """The account after partiallyLiquidateCreditAccount(token, amount), in the block the state was read."""
    h = acc.holdings[token]
    up = acc.underlying_price
    repaid, fee, seized = partial_payments(amount, up, h.price, acc.fees)
    debt_after = debt_after_repay(acc.debt, repaid, acc.fees.fee_interest)
    twv = 0
    for t, other in acc.holdings.items():
        # The underlying's balance is unchanged: amount in, repaid to the pool, fee to the treasury.
        bal = max(other.balance - seized, 0) if t == token else other.balance
        twv += token_collateral(other, up, bal)[1]
    profit = to_usd(seized, h.price) - to_usd(amount, up)
    return Partial(token, amount, repaid, fee, seized, debt_after, twv, acc.total_debt_usd(debt_after), profit)


def _last_true(pred, lo: int, hi: int) -> int:
    """Largest x in [lo, hi] with pred(x), given pred(lo) and pred monotone (true then false)."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if pred(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _upper_bound(acc: Account, token: str, budget: int) -> int:
    """Largest amount the facade accepts before the HF check: seized <= balance, debt after >= minDebt
    (0 is refused too: quotas are active on any account holding quoted collateral), within ``budget``."""
    h = acc.holdings[token]
    up = acc.underlying_price
    fees = acc.fees
    if h.balance == 0 or budget <= 0:
        return 0
    # seized(amount) >= amount x price ratio / discount: the balance bounds amount well below this.
    cap = min(budget, convert(h.balance + 1, h.price, up) + 1)
    ok_bal = lambda a: partial_payments(a, up, h.price, fees)[2] <= h.balance  # noqa: E731
    hi = _last_true(ok_bal, 0, cap)

    def ok_debt(a: int) -> bool:
        repaid = a - a * fees.fee_liquidation // PERCENTAGE_FACTOR
        d = debt_after_repay(acc.debt, repaid, fees.fee_interest)
        return d.debt >= max(acc.min_debt, 1)
    if not ok_debt(0):
        return 0
    return _last_true(ok_debt, 0, hi)


def best_partial_for(acc: Account, token: str, budget: int, margin_bps: int = 0) -> Partial | None:
    """The largest amount (profit is seized value - amount = amount x (1/discount - 1), so largest
    pays most) that passes every check with twvUSD >= totalDebtUSD x (1 + margin) afterwards."""
    hi = _upper_bound(acc, token, budget)
    if hi <= 0:
        return None

    def slack(a: int) -> int:
        p = simulate_partial(acc, token, a)
        return p.twv_usd_after * PERCENTAGE_FACTOR - p.total_debt_usd_after * (PERCENTAGE_FACTOR + margin_bps)

    if slack(hi) >= 0:
        return _checked(simulate_partial(acc, token, hi))
    # The slack is concave in the amount: min(value x LT, quota) of the seized token minus debt,
    # each linear in the amount. Its maximum is at 1, at the kink where the quota stops binding, or
    # at hi; from the best of them the slack falls, so the last feasible amount is found by bisection.
    h = acc.holdings[token]
    up = acc.underlying_price
    kink = 1
    if h.quota is not None:
        quota_usd = h.quota * to_usd(RAY, up) // RAY

        def binds(a: int) -> bool:
            left = max(h.balance - partial_payments(a, up, h.price, acc.fees)[2], 0)
            return to_usd(left, h.price) * h.lt // PERCENTAGE_FACTOR >= quota_usd
        if binds(1):
            kink = _last_true(binds, 1, hi)
    best = max((1, kink), key=slack)
    if slack(best) < 0:
        return None
    return _checked(simulate_partial(acc, token, _last_true(lambda a: slack(a) >= 0, best, hi)))


def _checked(p: Partial) -> Partial | None:
    return p if p.seized > 0 and p.profit_usd > 0 else None


def best_partial(acc: Account, budget: int, margin_bps: int = 0) -> Partial | None:
    """The most profitable partial liquidation over every collateral token (ties: larger amount)."""
    plans = [p for t in acc.holdings if t != acc.underlying
             for p in [best_partial_for(acc, t, budget, margin_bps)] if p is not None]
    return max(plans, key=lambda p: (p.profit_usd, p.amount), default=None)


def min_seized(seized: int, slippage_bps: int) -> int:
    """minSeizedAmount: the predicted seizure less a small tolerance (prices may move by inclusion)."""
    return seized * (PERCENTAGE_FACTOR - slippage_bps) // PERCENTAGE_FACTOR



def partial_range(acc: Account, token: str, margin_bps: int = 0) -> tuple[int, int] | None:
    """Every repaidAmount in [lo, hi] passes the facade's checks (seized <= balance, debt >= minDebt,
    HF >= 1 + margin after): the slack is concave in the amount, so the feasible amounts are one
    interval; hi is best_partial_for's amount, lo the first feasible amount below the slack's peak."""
    top = best_partial_for(acc, token, UNBOUNDED, margin_bps)
    if top is None:
        return None

    def ok(a: int) -> bool:
        p = simulate_partial(acc, token, a)
        return (p.twv_usd_after * PERCENTAGE_FACTOR >= p.total_debt_usd_after * (PERCENTAGE_FACTOR + margin_bps)
                and p.seized > 0)

    if ok(1):
        return 1, top.amount
    lo, hi = 1, top.amount  # ok(hi); find the smallest feasible amount
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi, top.amount


UNBOUNDED = 2**255


@dataclass(frozen=True)
class Full:
    """liquidateCreditAccount with a multicall that adds ``add`` underlying and withdraws every
    collateral (withdrawCollateral(token, type(uint256).max): all but 1 wei) to the liquidator.

    CreditLogic.calcLiquidationPayments: totalFunds = totalValue x liquidationDiscount / 10000;
    amountToPool = totalDebt + totalValue x feeLiquidation / 10000, or totalFunds when less (a loss,
    bad debt for the pool); the credit manager keeps minRemainingFunds = totalFunds - amountToPool
    (or 0) on the account for its owner and sends the liquidator min(remaining - minRemaining,
    underlying balance). With every collateral withdrawn, the liquidator gets back
    underlying balance + add - totalFunds, so it must add at least totalFunds - underlying balance;
    its gain is the collateral withdrawn less that: totalValue x (1 - liquidationDiscount)."""
    total_value: int  # calcDebtAndCollateral's totalValue (underlying units)
    total_funds: int
    amount_to_pool: int
    loss: int  # debt + interest the pool does not get back
    bad_debt: bool  # CreditFacadeV3._hasBadDebt: the loss policy decides
    withdrawn: dict[str, int]  # token -> amount sent to the liquidator
    add: int  # underlying the liquidator adds
    returned: int  # underlying the credit manager sends the liquidator
    profit_usd: int  # withdrawn value + returned - add, at the oracle's prices (8 decimals)


def full_liquidation(acc: Account, total_value: int, *, min_add: int = 0) -> Full:
    """What a full liquidation of ``acc`` gives the liquidator (unhealthy, not expired)."""
    fees = acc.fees
    total_funds = total_value * fees.liquidation_discount // PERCENTAGE_FACTOR
    to_pool = acc.debt.total + total_value * fees.fee_liquidation // PERCENTAGE_FACTOR
    with_interest = acc.debt.debt + acc.debt.accrued_interest
    to_pool = min(to_pool, total_funds)  # a loss: the pool gets what the discount leaves
    loss = max(with_interest - to_pool, 0)
    bad = total_value * fees.liquidation_discount < with_interest * PERCENTAGE_FACTOR
    underlying = acc.holdings[acc.underlying].balance
    withdrawn = {t: h.balance - 1 for t, h in acc.holdings.items() if t != acc.underlying and h.balance > 1}
    add = max(total_funds - underlying, min_add)
    returned = underlying + add - total_funds
    up = acc.underlying_price
    profit = (sum(to_usd(a, acc.holdings[t].price) for t, a in withdrawn.items())
              + to_usd(returned, up) - to_usd(add, up))
    return Full(total_value, total_funds, to_pool, loss, bad, withdrawn, add, returned, profit)
