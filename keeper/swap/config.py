"""The [swap] and [flash] tables: where a flash-mode liquidation sells what it seizes (Uniswap V3)
and where it borrows what it repays."""
from __future__ import annotations

from pydantic import Field, field_validator

from keeper.config_types import Address, Strict

UNISWAP_FEE_TIERS = (100, 500, 3000, 10000)


class SwapConfig(Strict):
    """Uniswap V3 routing of the seized collateral back to the token the liquidation repaid."""
    factory: Address = Field(description="UniswapV3Factory: pools are found with getPool(tokenA, tokenB, fee)")
    quoter: Address = Field(description="QuoterV2: every candidate route is quoted by eth_call of quoteExactInput")
    router: Address = Field(description="SwapRouter (v1: exactInput with a deadline), through which the executor "
                                        "sells")
    weth: Address = Field(description="the wrapped native token: two-hop routes go through it")
    stablecoin: Address = Field(description="the main stablecoin: two-hop routes go through it too")
    fee_tiers: list[int] = Field(default=list(UNISWAP_FEE_TIERS), min_length=1,
                                 description="fee tiers (hundredths of a bip) whose pools are looked up for each "
                                             "pair of tokens")
    pools: list[Address] = Field(default=[], description="when given, only these pools are used (their tokens and "
                                                         "fee read from them) and the factory is not asked")
    slippage_bps: int = Field(default=50, ge=0, le=5_000,
                              description="each swap's amountOutMinimum is its quote less this many basis points, "
                                          "and the executor's minimum profit is lowered by the same amount")
    search_points: int = Field(default=8, ge=3, le=32,
                               description="sizes quoted per round of the search for the most profitable size when "
                                           "price impact makes the whole position pay less")
    search_rounds: int = Field(default=4, ge=1, le=10,
                               description="rounds of that search, each one JSON-RPC batch for every opportunity of "
                                           "the block; each round narrows the range about search_points / 2 times")

    @field_validator("fee_tiers")
    @classmethod
    def _tiers(cls, v: list[int]) -> list[int]:
        bad = [f for f in v if f not in UNISWAP_FEE_TIERS]
        if bad:
            raise ValueError(f"{bad} are not Uniswap V3 fee tiers {list(UNISWAP_FEE_TIERS)}")
        return sorted(set(v))


class FlashConfig(Strict):
    """Where a flash-mode liquidation borrows the repayment, cheapest first: Morpho Blue (no fee),
    an Aave V3 Pool (FLASHLOAN_PREMIUM_TOTAL), a Uniswap V3 pool (its fee tier)."""
    morpho: Address | None = Field(default=None, description="Morpho Blue: fee-free flashLoan of any token it holds")
    aave_pool: Address | None = Field(default=None,
                                      description="an Aave V3 Pool lending by flashLoanSimple at its "
                                                  "FLASHLOAN_PREMIUM_TOTAL (an aave_v3 entry also borrows from its "
                                                  "own Pool)")
    uniswap: bool = Field(default=True, description="also borrow from a Uniswap V3 pool holding the token (pool.flash, "
                                                    "its fee tier), never one the swap goes through")
