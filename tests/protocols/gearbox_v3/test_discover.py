"""Gearbox V3 credit managers found from the AddressProviderV3 (config address_provider): the config
takes exactly one of address_provider and credit_managers; on a real node the keeper reads the
devnet's CONTRACTS_REGISTER (GovStandIn, answering the real IAddressProvider / IContractsRegister
calls), keeps the V3 credit managers, says which it left out and why, and liquidates with them."""
from __future__ import annotations

import copy

import pytest
import structlog
from keeper_devnet.protocols.gearbox_v3.world import add_gearbox_to_world, facade_events, gearbox_config_entry
from keeper_devnet.tokens import set_price
from keeper_devnet.world import KEEPER_ADDRESS, World, bare_world
from pydantic import ValidationError

from keeper.protocols.gearbox_v3 import discover
from keeper.protocols.gearbox_v3.config import GearboxV3Config
from tests.helpers.keeper import run_until_quiet, startup_error, step
from tests.protocols.gearbox_v3.helpers import call, gearbox, keeper_for

PROVIDER = "0x9ea7b04Da02a5373317D745c1571c84aaD03321D"
CM = "0x0000000000000000000000000000000000000001"


# ---- config (no node) ----------------------------------------------------------------------------

def test_config_takes_exactly_one_source_of_credit_managers():
    by_provider = GearboxV3Config(kind="gearbox_v3", name="g", address_provider=PROVIDER.lower())
    assert by_provider.address_provider == PROVIDER and by_provider.credit_managers is None
    assert GearboxV3Config(kind="gearbox_v3", name="g", credit_managers=[CM]).address_provider is None
    for extra, which in (({"address_provider": PROVIDER, "credit_managers": [CM]}, "both"), ({}, "neither")):
        with pytest.raises(ValidationError, match=rf"give exactly one of address_provider \(Gearbox's "
                                                  rf"AddressProviderV3\) and credit_managers .*not {which}"):
            GearboxV3Config(kind="gearbox_v3", name="g", **extra)
    with pytest.raises(ValidationError, match="credit_managers"):
        GearboxV3Config(kind="gearbox_v3", name="g", credit_managers=[])


def test_only_v3_versions_are_kept_in_the_register_order():
    kept, out = discover.split({"0xA": 310, "0xB": 2, "0xC": 300, "0xD": None, "0xE": 400})
    assert kept == ["0xA", "0xC"]
    assert [(x.credit_manager, x.reason, x.version) for x in out] == [
        ("0xB", discover.LeftOut.NOT_V3, 2), ("0xD", discover.LeftOut.NO_VERSION, None),
        ("0xE", discover.LeftOut.NOT_V3, 400)]
    assert discover.CONTRACTS_REGISTER == b"CONTRACTS_REGISTER" + bytes(14)


# ---- on a node -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
async def gb_world(deployer) -> World:
    world = await bare_world(deployer)
    await add_gearbox_to_world(deployer, world, keeper_usdc=100_000, pyth_weth=False)
    return world


@pytest.fixture
async def world(gb_world, snapshot):
    yield copy.deepcopy(gb_world)


async def test_keeper_with_only_the_address_provider_finds_the_credit_managers_and_liquidates(
        deployer, world, tmp_path):
    d, dep = deployer, gearbox(world)
    # The register also lists two contracts that are not V3 credit managers: a Chainlink mock feed
    # (version() = 0) and a token (no version()); both must be left out, with the reason.
    feed, token = world.tokens["WETH"].feed, world.tokens["WBTC"].address
    for junk in (feed, token):
        await d.transact(dep.gov, dep.abis["GovStandIn"], "addCreditManager", junk)
    registered = await call(d, dep, "GovStandIn", dep.gov, "getCreditManagers")
    assert registered == [dep.credit_manager, feed, token]
    assert await call(d, dep, "GovStandIn", dep.gov, "getAddressOrRevert",
                      discover.CONTRACTS_REGISTER, 0) == dep.gov
    assert "credit_managers" not in gearbox_config_entry(dep, address_provider=True)
    with structlog.testing.capture_logs() as logs:
        keeper = await keeper_for(world, tmp_path, address_provider=True, full_liquidation=False)
    try:
        (adapter,) = keeper.adapters
        assert list(adapter.managers) == [dep.credit_manager]  # the world's V3 credit managers
        assert adapter.managers[dep.credit_manager].facade == dep.credit_facade
        (found,) = [e for e in logs if e["event"] == "gearbox credit managers found"]
        assert found["contracts_register"] == dep.gov and found["registered"] == 3 and found["watched"] == 1
        assert found["left_out"] == [
            {"credit_manager": feed, "reason": discover.LeftOut.NOT_V3.value, "version": 0},
            {"credit_manager": token, "reason": discover.LeftOut.NO_VERSION.value, "version": None}]
        await step(keeper)
        assert keeper.recorder.outcomes == []  # all healthy before the drop
        weth = world.tokens["WETH"]
        await set_price(d, weth, weth.price * 7 // 10)
        await run_until_quiet(keeper)
    finally:
        await keeper.close()
    liqs = keeper.recorder.report()["liquidations"]
    assert liqs, "no liquidation after a 30% WETH drop"
    for o in liqs:
        (h,) = o["details"]["tx_hashes"]
        rc = await d.w3.eth.get_transaction_receipt(h)
        assert rc["status"] == 1 and rc["to"] == dep.credit_facade
        (ev,) = facade_events(d, dep, rc, "PartiallyLiquidateCreditAccount")
        assert ev["creditAccount"] == o["account"] and ev["liquidator"] == KEEPER_ADDRESS


async def test_an_address_that_is_not_an_address_provider_is_refused(world, tmp_path):
    dep = gearbox(world)
    token = world.tokens["WBTC"].address
    world.entries = {"gearbox_v3": gearbox_config_entry(dep, address_provider=True).replace(dep.gov, token)}
    await startup_error(world, tmp_path, rf'address_provider {token} does not answer getAddressOrRevert\("CONTRACTS_REGISTER", 0\)')
