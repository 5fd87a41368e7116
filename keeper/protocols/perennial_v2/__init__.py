"""Perennial V2: Markets priced by a keeper oracle over Pyth (commit, then protected closes)."""
from keeper.protocols.perennial_v2.config import PerennialV2Config
from keeper.protocols.registry import Protocol

PROTOCOL = Protocol(
    kind="perennial_v2",
    config=PerennialV2Config,
    adapter="keeper.protocols.perennial_v2.adapter:PerennialV2Adapter",
    needs_pull_oracle=True,
    # Market (IMarket.sol) and keeper oracle (IKeeperFactory.sol, IKeeperOracle.sol)
    errors=("MarketStalePriceError()", "MarketInvalidProtectionError()", "MarketInsufficientMarginError()",
            "MarketInsufficientCollateralError()", "MarketOperatorNotAllowedError()", "MarketNotSingleSidedError()",
            "MarketOverCloseError()", "MarketProtectedError()", "MarketNotOperatorError()",
            "MarketSettleOnlyError()", "MarketClosedError()", "MarketExceedsPendingIdLimitError()",
            "KeeperFactoryNotCreatedError()", "KeeperFactoryVersionOutsideRangeError()",
            "KeeperOracleVersionOutsideRangeError()", "KeeperOracleInvalidPriceError()"),
)
