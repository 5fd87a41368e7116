"""Governance changes Comet's collaterals (on mainnet: the Configurator's addAsset / update of a factor,
then deployAndUpgradeTo: the proxy points at an implementation built with the new asset list). Here
the Comet stand-in on Anvil is upgraded in place the same way: the code of a stand-in deployed with
the new configuration replaces the old one's, and its asset list (kept in storage by the stand-in)
is copied over. The adapter's next refresh must see the new collateral and the changed factors, and
its store-front maths must agree with the stand-in's own quoteCollateral on chain for every asset
(the adapter's quote_ok check, and the quotes compared here for amounts of every size)."""
from __future__ import annotations

import structlog.testing
from eth_utils import keccak
from keeper_devnet.protocols.compound_v3.world import (
    DEFAULT_ASSET_PARAMS,
    CometAssetParams,
    comet_call,
    deploy_comet,
    open_comet_position,
    supply_base,
    supply_collateral,
)
from keeper_devnet.world import KEEPER_ADDRESS, bare_world

from keeper.chain.client import Chain
from keeper.chain.rpc import Rpc
from keeper.protocols.base import Services
from keeper.protocols.compound_v3.adapter import QUOTE_CHECK_UNITS, CompoundV3Adapter
from keeper.protocols.compound_v3.config import CompoundV3Config

E18 = 10**18
ASSET_LIST_SLOT = 0  # CometStandIn.assetInfos: its first storage variable (the rest are immutables)
SLOTS_PER_ASSET = 4  # AssetInfo packs into 4 slots: offset+asset, feed+scale, three factors, supplyCap


async def upgrade(d, comet: str, implementation: str) -> None:
    """What deployAndUpgradeTo does to the proxy, on the stand-in: ``implementation``'s code (its
    immutables: numAssets...) and asset list at ``comet``, the rest of ``comet``'s storage kept."""
    await d.rpc("anvil_setCode", [comet, await d.rpc("eth_getCode", [implementation, "latest"])])
    n = int(await d.rpc("eth_getStorageAt", [implementation, hex(ASSET_LIST_SLOT), "latest"]), 16)
    first = int.from_bytes(keccak(ASSET_LIST_SLOT.to_bytes(32, "big")), "big")
    for slot in [ASSET_LIST_SLOT] + [first + i for i in range(n * SLOTS_PER_ASSET)]:
        value = await d.rpc("eth_getStorageAt", [implementation, hex(slot), "latest"])
        await d.rpc("anvil_setStorageAt", [comet, hex(slot), "0x" + value[2:].rjust(64, "0")])


async def test_refresh_picks_up_a_collateral_added_by_governance(deployer, anvil, snapshot):
    d = deployer
    world = await bare_world(d)
    tokens = world.tokens
    old = await deploy_comet(d, tokens, collaterals=("WETH",))
    lender, user = world.take_accounts(2)
    await supply_base(d, old, lender, 1_000_000 * 10**6)
    await open_comet_position(d, old, user, {"WETH": 10}, 12_000)
    rpc = Rpc(anvil.url)
    try:
        chain = Chain(rpc)
        a = CompoundV3Adapter(CompoundV3Config(kind="compound_v3", comet=old.comet), Services(KEEPER_ADDRESS))
        await a.start(chain)
        head = await chain.block_number()
        assert await a.discover(0, head) == 1
        await a.refresh(head)
        weth, wbtc = tokens["WETH"].address, tokens["WBTC"].address
        assert [x.symbol for x in a.assets.values()] == ["WETH"] and a.assets[weth].quote_ok
        assert a.accounts[user].collateral == {weth: 10 * E18}

        # Governance: WBTC added, WETH's liquidationFactor lowered from 0.95 to 0.90.
        params = {**DEFAULT_ASSET_PARAMS, "WETH": CometAssetParams(
            DEFAULT_ASSET_PARAMS["WETH"].borrow_cf, DEFAULT_ASSET_PARAMS["WETH"].liquidate_cf, 90 * 10**16, 100_000)}
        new = await deploy_comet(d, tokens, collaterals=("WETH", "WBTC"), asset_params=params)
        await upgrade(d, old.comet, new.comet)
        old.collaterals = new.collaterals
        await supply_collateral(d, old, user, "WBTC", 2 * 10**7)  # 0.2 WBTC, accepted only after the upgrade
        assert await comet_call(d, old, "numAssets") == 2
        with structlog.testing.capture_logs() as logs:
            await a.refresh(await chain.block_number())
        assert [e["event"] for e in logs] == ["comet.assets_changed"]  # and no quote disagreement
        assert [x.symbol for x in a.assets.values()] == ["WETH", "WBTC"]
        assert a.assets[weth].liquidation_factor == 90 * 10**16
        assert a.accounts[user].collateral == {weth: 10 * E18, wbtc: 2 * 10**7}
        assert all(x.quote_ok for x in a.assets.values())
        # A factor changed alone (no new asset): WBTC's liquidationFactor to 0.85.
        params["WBTC"] = CometAssetParams(params["WBTC"].borrow_cf, params["WBTC"].liquidate_cf, 85 * 10**16, 10_000)
        await upgrade(d, old.comet, (await deploy_comet(d, tokens, collaterals=("WETH", "WBTC"),
                                                        asset_params=params)).comet)
        with structlog.testing.capture_logs() as logs:
            await a.refresh(await chain.block_number())
        assert logs == []
        assert a.assets[wbtc].liquidation_factor == 85 * 10**16 and all(x.quote_ok for x in a.assets.values())
        # The independent quote: the stand-in's own quoteCollateral on chain, for the probe the adapter
        # checks and for amounts of every size, equals the adapter's store-front maths.
        for x in a.assets.values():
            sf = a._store_front(x)
            for base in (1, 999_999, QUOTE_CHECK_UNITS * 10**6, 123_456_789_012):
                assert sf.quote(base) == await comet_call(d, old, "quoteCollateral", x.asset, base), (x.symbol, base)
    finally:
        await rpc.close()
