"""Each adapter's liquidation_events: after the keeper liquidates every venue's positions, the
protocols' own events name the same accounts, the keeper as the winner, and value them as the plans
did."""
from __future__ import annotations

from collections import defaultdict

import pytest
from keeper_devnet.world import ALL_PROTOCOLS, KEEPER_ADDRESS

from keeper.engine.record import Status
from keeper.protocols.base import PlanKind
from tests.helpers.keeper import make_keeper, run_until_quiet
from tests.live.helpers import drop_weth


async def test_every_venue_reports_the_liquidations_it_saw(deployer, world, tmp_path):
    await drop_weth(deployer, world)
    first = await deployer.w3.eth.block_number + 1
    keeper = await make_keeper(world, tmp_path)
    try:
        await run_until_quiet(keeper)
        last = await deployer.w3.eth.block_number
        await keeper.scan()  # the adapters' prices at the last block
        events = {a.name: await a.liquidation_events(first, last) for a in keeper.adapters}
        before = {a.name: await a.liquidation_events(0, first - 1) for a in keeper.adapters}
    finally:
        await keeper.close()
    sent = [o for o in keeper.recorder.outcomes if o.status is Status.CONFIRMED and o.kind is not PlanKind.CLAIM]
    accounts, gross = defaultdict(set), defaultdict(float)
    for o in sent:
        accounts[o.protocol].update(o.accounts or (o.account,))
        gross[o.protocol] += o.details["gross_profit_usd"]
    assert set(accounts) == set(ALL_PROTOCOLS)
    assert all(not evs for evs in before.values())
    for proto in ALL_PROTOCOLS:
        evs = events[proto]
        liquidated = {e.account for e in evs if e.kind is PlanKind.LIQUIDATION}
        assert liquidated == accounts[proto], proto
        assert {e.winner for e in evs} == {KEEPER_ADDRESS}, proto
        assert all(first <= e.block <= last and e.tx_hash.startswith("0x") for e in evs)
        # Valued as the plans were: collateral seized minus debt repaid (Aave, Morpho, Gearbox
        # partials), the buys' discount (Comet), the liquidation fee owed (Perennial).
        total = sum(e.value_usd for e in evs) / 1e8
        assert total == pytest.approx(gross[proto], rel=2e-3), proto
