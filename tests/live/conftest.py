"""The all-venue world of the going-live tests: built once on the session Anvil (tests revert to it)."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.world import ALL_PROTOCOLS

from tests.helpers.keeper import world_with_aave_positions
from tests.live.helpers import AAVE_POSITIONS


@pytest.fixture(scope="session")
async def live_world(deployer):
    return await world_with_aave_positions(deployer, ALL_PROTOCOLS, AAVE_POSITIONS)


@pytest.fixture
async def world(live_world, snapshot):
    yield copy.deepcopy(live_world)
