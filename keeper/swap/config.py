"""The [swap] and [flash] tables: where a flash-mode liquidation sells what it seizes (Uniswap V3)
and where it borrows what it repays."""
from __future__ import annotations

from pydantic import Field, field_validator

from keeper.config_types import Address, Strict

UNISWAP_FEE_TIERS = (100, 500, 3000, 10000)


class SwapConfig(Strict):
    """Uniswap V3, where flash-mode liquidations sell what they seize (Ethereum mainnet shown). Every
    candidate route (the direct pool of each fee tier, two hops through WETH and through the
    stablecoin) is quoted by QuoterV2 (eth_call, batched); when price impact makes the whole position
    pay less, the keeper searches for the size that pays most. Uncomment for execution = "flash":"""
    factory: Address = Field(description="UniswapV3Factory: pools are found with getPool(tokenA, tokenB, fee).",
                             examples=["0x1F98431c8aD98523631AE4a59f267346ea31F984"])
    quoter: Address = Field(description="QuoterV2: every candidate route is quoted by eth_call of quoteExactInput.",
                            examples=["0x61fFE014bA17989E743c5F6cB21bF9697530B21e"])
    router: Address = Field(description="SwapRouter (v1: exactInput with a deadline), through which the executor "
                                        "sells.", examples=["0xE592427A0AEce92De3Edee1F18E0157C05861564"])
    weth: Address = Field(description="The wrapped native token: two-hop routes go through it.",
                          examples=["0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"])
    stablecoin: Address = Field(description="The main stablecoin: two-hop routes go through it too.",
                                examples=["0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"])
    fee_tiers: list[int] = Field(default=list(UNISWAP_FEE_TIERS), min_length=1,
                                 description="Fee tiers (hundredths of a bip) whose pools are looked up for each "
                                             "pair of tokens.")
    pools: list[Address] = Field(default=[], description="When given, only these pools are used (their tokens and "
                                                         "fee read from them) and the factory is not asked.")
    slippage_bps: int = Field(default=50, ge=0, le=5_000,
                              description="Each swap's amountOutMinimum is its quote less this many basis points, "
                                          "and the executor's minimum profit is lowered by the same amount (it "
                                          "reverts below it).")
    search_points: int = Field(default=8, ge=3, le=32,
                               description="Sizes quoted per round of the search for the most profitable size when "
                                           "price impact makes the whole position pay less.")
    search_rounds: int = Field(default=4, ge=1, le=10,
                               description="Rounds of that search, each one JSON-RPC batch for every opportunity of "
                                           "the block; each round narrows the range about search_points / 2 times.")

    @field_validator("fee_tiers")
    @classmethod
    def _tiers(cls, v: list[int]) -> list[int]:
        bad = [f for f in v if f not in UNISWAP_FEE_TIERS]
        if bad:
            raise ValueError(f"{bad} are not Uniswap V3 fee tiers {list(UNISWAP_FEE_TIERS)}")
        return sorted(set(v))


class FlashConfig(Strict):
    """Flash lenders besides Uniswap V3 pools, cheapest first: Morpho Blue (no fee), an Aave V3 Pool
    (FLASHLOAN_PREMIUM_TOTAL), a Uniswap V3 pool (its fee tier); an aave_v3 entry also borrows from
    its own Pool. Ethereum mainnet shown."""
    morpho: Address | None = Field(default=None, description="Morpho Blue: fee-free flashLoan of any token it holds.",
                                   examples=["0xBBBBBbbBBb9cC5e90e3b3Af64bdAF62C37EEFFCb"])
    aave_pool: Address | None = Field(default=None,
                                      description="An Aave V3 Pool lending by flashLoanSimple at its "
                                                  "FLASHLOAN_PREMIUM_TOTAL (an aave_v3 entry also borrows from its "
                                                  "own Pool).",
                                      examples=["0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"])
    uniswap: bool = Field(default=True, description="Also borrow from a Uniswap V3 pool holding the token "
                                                    "(pool.flash, its fee tier), never one the swap goes through.")
