"""One Anvil per test session; every test runs inside an evm_snapshot / evm_revert pair.

Tests that need the node (through the ``anvil`` fixture, directly or through another fixture) or
the node tools (``@pytest.mark.anvil`` set by hand) carry the ``anvil`` marker, so that
``pytest -m "not anvil"`` runs the node-free tests on a machine without node or npm."""
from __future__ import annotations

import pytest

NODE_FIXTURES = {"anvil", "deployer", "snapshot", "real_world"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if NODE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.anvil)


@pytest.fixture(scope="session")
async def anvil():
    from keeper_devnet.anvil import Anvil
    node = await Anvil.start(extra=["--accounts", "100"])
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture(scope="session")
async def deployer(anvil):
    from keeper_devnet.deploy import Deployer
    d = await Deployer(anvil.url).init()
    try:
        yield d
    finally:
        await d.close()


@pytest.fixture
async def snapshot(deployer):
    """Revert the chain to its state at the start of the test when the test ends, with what a
    revert leaves alone put back too: the node's pool emptied (a transaction a test left pending
    would take a nonce in the next test) and automining on."""
    snap = await deployer.rpc("evm_snapshot", [])
    try:
        yield
    finally:
        await deployer.rpc("evm_setIntervalMining", [0])
        await deployer.rpc("anvil_dropAllTransactions", [])
        await deployer.rpc("evm_revert", [snap])
        await deployer.rpc("evm_setAutomine", [True])


@pytest.fixture(scope="session")
async def real_world(deployer):
    from keeper_devnet.world import build_world
    return await build_world(deployer, aave="real")
