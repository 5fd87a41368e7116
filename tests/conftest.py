"""One Anvil per test session; every test runs inside an evm_snapshot / evm_revert pair."""
from __future__ import annotations

import pytest

from keeper.devnet.anvil import Anvil
from keeper.devnet.deploy import Deployer


@pytest.fixture(scope="session")
async def anvil():
    node = await Anvil.start(extra=["--accounts", "100"])
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture(scope="session")
async def deployer(anvil):
    d = await Deployer(anvil.url).init()
    try:
        yield d
    finally:
        await d.close()


@pytest.fixture
async def snapshot(deployer):
    """Revert the chain to its state at the start of the test when the test ends."""
    snap = await deployer.rpc("evm_snapshot", [])
    try:
        yield
    finally:
        await deployer.rpc("evm_revert", [snap])
