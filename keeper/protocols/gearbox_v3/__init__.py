"""Gearbox V3: credit managers and their facades (partial liquidation)."""
from keeper.protocols.gearbox_v3.config import GearboxV3Config
from keeper.protocols.registry import Protocol

PROTOCOL = Protocol(
    kind="gearbox_v3",
    config=GearboxV3Config,
    adapter="keeper.protocols.gearbox_v3.adapter:GearboxV3Adapter",
    # Every custom error of the Gearbox V3 compile jobs: a facade call also reverts with its credit
    # manager's, oracle's, pool's, 1inch SafeERC20's and its updatable price feeds' errors.
    abi_error_files=("gearbox_errors",),
)
