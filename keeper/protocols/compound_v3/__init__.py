"""Compound III: one Comet market (absorb, then buyCollateral at the store-front price)."""
from keeper.protocols.compound_v3.config import CompoundV3Config
from keeper.protocols.registry import Protocol

PROTOCOL = Protocol(
    kind="compound_v3",
    config=CompoundV3Config,
    adapter="keeper.protocols.compound_v3.adapter:CompoundV3Adapter",
    errors=("NotLiquidatable()", "NotForSale()", "TooMuchSlippage()", "InsufficientReserves()"),
)
