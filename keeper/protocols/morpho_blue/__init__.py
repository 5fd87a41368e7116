"""Morpho Blue: the singleton and its markets (reverts are plain strings, nothing to declare)."""
from keeper.protocols.morpho_blue.config import MorphoBlueConfig
from keeper.protocols.registry import Protocol

PROTOCOL = Protocol(
    kind="morpho_blue",
    config=MorphoBlueConfig,
    adapter="keeper.protocols.morpho_blue.adapter:MorphoBlueAdapter",
)
