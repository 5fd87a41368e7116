"""Flash liquidity: who can lend a token inside the transaction, how much, at what fee."""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from keeper.executor import Flash, FlashSource

PERCENTAGE_FACTOR = 10_000
UNISWAP_FEE_UNIT = 1_000_000


@dataclass(frozen=True)
class Lender:
    source: FlashSource
    address: str  # Morpho, the Aave Pool, or the Uniswap V3 pool
    available: int  # what it holds of the token this block
    rate: int  # Aave: FLASHLOAN_PREMIUM_TOTAL (bps); Uniswap: the pool's fee tier (1e-6); Morpho: 0

    def fee(self, amount: int) -> int:
        """What the lender takes on top of ``amount``: Morpho Blue none; Aave V3 FlashLoanLogic
        amount.percentMul(premium) (half up); Uniswap V3 pool.flash FullMath.mulDivRoundingUp(amount, fee, 1e6)."""
        if self.source is FlashSource.MORPHO_BLUE:
            return 0
        if self.source is FlashSource.AAVE_V3:
            return (amount * self.rate + PERCENTAGE_FACTOR // 2) // PERCENTAGE_FACTOR
        return -(-amount * self.rate // UNISWAP_FEE_UNIT)

    def flash(self) -> Flash:
        return Flash(self.source, self.address)

    @property
    def name(self) -> str:
        return {FlashSource.MORPHO_BLUE: "morpho_blue", FlashSource.AAVE_V3: "aave_v3",
                FlashSource.UNISWAP_V3: "uniswap_v3"}[self.source]


def cheapest(lenders: list[Lender], amount: int, avoid: Collection[str] = ()) -> Lender | None:
    """The lender with the lowest fee on ``amount`` that holds it, among those not in ``avoid`` (a
    Uniswap pool the swap goes through is locked during its own flash)."""
    able = [x for x in lenders if x.available >= amount and x.address not in avoid]
    return min(able, key=lambda x: (x.fee(amount), x.source), default=None)
