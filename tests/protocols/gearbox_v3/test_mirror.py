"""The Gearbox V3 incremental mirror on the real contracts (@gearbox-protocol/core-v3): after random
opens, debt increases and repayments, collateral added, withdrawn and donated, quota changes, time
passing, price moves and liquidations, the mirror's local calcDebtAndCollateral of EVERY account
equals the credit manager's, exactly, while only the accounts the block's logs name are read
again; a quiet block costs the same requests whatever the number of accounts; a restart resumes
from the stored rows; a resync finds (and repairs) a record that went wrong."""
from __future__ import annotations

import copy
import random

import pytest
from keeper_devnet.anvil import free_port
from keeper_devnet.deploy import DeployError
from keeper_devnet.protocols.gearbox_v3.world import (
    QUOTA_LIMIT,
    add_gearbox_to_world,
    fresh_reads,
    gearbox_config_entry,
    liquidate_fully,
    open_credit_account,
)
from keeper_devnet.tokens import approve, mint, set_price
from keeper_devnet.world import World, bare_world

from keeper.abi import load
from keeper.chain.client import Chain
from keeper.chain.multicall import Call
from keeper.protocols.base import Services
from keeper.protocols.gearbox_v3.adapter import AccountState, GearboxV3Adapter
from keeper.protocols.gearbox_v3.mirror import GearboxMirror
from keeper.store import SqliteStore
from keeper.store.types import MirrorRow
from tests.helpers.keeper import make_keeper
from tests.helpers.recording_proxy import RecordingProxy
from tests.protocols.gearbox_v3.helpers import facade_multicall, gearbox, keeper_for

pytestmark = pytest.mark.anvil
CM = load("gearbox_v3/gearbox_credit_manager_v3")
CDD, LIQ = CM.fn("calcDebtAndCollateral"), CM.fn("isLiquidatable")
KINDS = ("open", "borrow", "repay", "add", "withdraw", "quota", "donate", "time", "price", "liquidate")


@pytest.fixture(scope="module")
async def gb_world(deployer) -> World:
    world = await bare_world(deployer)
    await add_gearbox_to_world(deployer, world, pyth_weth=False)
    return world


@pytest.fixture
async def world(gb_world, snapshot):
    yield copy.deepcopy(gb_world)


@pytest.fixture(scope="module")
async def pyth_gb_world(deployer) -> World:
    world = await bare_world(deployer)
    await add_gearbox_to_world(deployer, world)  # WETH priced by a PythPriceFeed (on-demand updates)
    return world


@pytest.fixture
async def pyth_world(pyth_gb_world, snapshot):
    yield copy.deepcopy(pyth_gb_world)


class Driver:
    """The adapter driven block by block as the engine does (discover, then refresh)."""

    def __init__(self, chain: Chain, ad: GearboxV3Adapter):
        self.chain, self.ad, self.block = chain, ad, -1
        self.rows: dict[str, MirrorRow] = {}  # what the store would hold

    @property
    def mir(self) -> GearboxMirror:
        assert self.ad.mirror is not None
        return self.ad.mirror

    async def step(self) -> int:
        block = await self.chain.block_number()
        await self.ad.discover(self.block + 1, block)
        await self.ad.refresh(block)
        self.block = block
        self.rows |= {r.key: r for r in self.ad.mirror_rows()}
        return block


async def chain_health(chain: Chain, accounts: dict[str, AccountState], block: int) -> dict[str, tuple]:
    """(debt, accruedInterest, accruedFees, totalDebtUSD, totalValue, twvUSD, isLiquidatable) per account."""
    calls = []
    for ca, st in accounts.items():
        calls += [Call(st.cm, CDD.encode(ca, 3), CDD.decode), Call(st.cm, LIQ.encode(ca, 10_000), LIQ.decode)]
    res = await chain.multicall_strict(calls, block)
    return {ca: (*(res[2 * i][j] for j in (0, 4, 5, 6, 7, 9)), res[2 * i + 1]) for i, ca in enumerate(accounts)}


def local_health(mir: GearboxMirror, ca: str) -> tuple:
    h = mir.health[ca]
    return (h.debt.debt, h.debt.accrued_interest, h.debt.accrued_fees, h.total_debt_usd, h.total_value, h.twv_usd,
            h.liquidatable)


async def assert_exact(drv: Driver, block: int) -> dict[str, tuple]:
    """Every account's local health is the credit manager's, and so is what the adapter plans with."""
    chain = await chain_health(drv.chain, drv.ad.accounts, block)
    for ca, want in chain.items():
        assert local_health(drv.mir, ca) == want, ca
        st = drv.ad.accounts[ca]
        assert st.block == block and st.debt is not None
        assert (st.debt.debt, st.debt.accrued_interest, st.debt.accrued_fees, st.total_debt_usd, st.total_value,
                st.twv_usd, st.liquidatable) == want, ca
    return chain


async def reopen_borrowing(d, dep) -> None:
    """A liquidation with loss stops new borrowing (the facade's per-block debt limit and the quota
    limits go to 0): governance opens it again, so that the random operations keep borrowing."""
    await d.transact(dep.credit_configurator, dep.abis["CreditConfiguratorV3"], "setMaxDebtPerBlockMultiplier", 2)
    for t in dep.collaterals.values():
        await d.transact(dep.pool_quota_keeper, dep.abis["PoolQuotaKeeperV3"], "setTokenLimit", t.address,
                         QUOTA_LIMIT)


async def test_local_health_equals_the_credit_manager_after_random_operations(deployer, world, tmp_path):
    d, dep = deployer, gearbox(world)
    usdc, weth, wbtc = dep.underlying, dep.collaterals["WETH"], dep.collaterals["WBTC"]
    owners = dict(zip(world.extra["gearbox_accounts"], world.extra["gearbox_borrowers"]))
    (liquidator,) = world.take_accounts(1)
    keeper = await keeper_for(world, tmp_path)
    try:
        ad = keeper.by_name["gearbox_v3"]
        assert isinstance(ad, GearboxV3Adapter) and ad.mirror is not None
        drv = Driver(keeper.chain, ad)
        chain = await assert_exact(drv, await drv.step())
        assert drv.mir.stats.reread == len(owners) == len(ad.accounts)
        rng = random.Random(7)
        ops = [k for k in KINDS for _ in range(6)]
        rng.shuffle(ops)
        done: dict[str, int] = dict.fromkeys(KINDS, 0)
        for kind in ops:
            healthy = [ca for ca, c in chain.items() if not c[6] and c[0] > 0]
            ca = rng.choice(healthy) if healthy else None
            touched: set[str] = set()
            try:
                if kind == "open":
                    (user,) = world.take_accounts(1)
                    w = rng.choice([1, 2, 3])
                    new = await open_credit_account(d, dep, user, 1_000 * w, {"WETH": w}, {"WETH": 3_000 * w})
                    owners[new] = user
                    touched = {new}
                elif kind == "liquidate":
                    if not any(c[6] for c in chain.values()):
                        await set_price(d, weth, weth.price * 7 // 10)
                        chain = await assert_exact(drv, await drv.step())
                    bad = sorted(c for c, h in chain.items() if h[6])
                    ca = rng.choice(bad)
                    await liquidate_fully(d, dep, ca, liquidator)
                    touched = {ca}
                    await reopen_borrowing(d, dep)
                elif kind == "time":
                    await d.rpc("evm_increaseTime", [rng.randint(3_600, 20 * 86_400)])
                    await d.rpc("evm_mine", [])
                elif kind == "price":
                    t = rng.choice([weth, wbtc])
                    await set_price(d, t, t.price * rng.choice([85, 95, 105, 115]) // 100)
                elif ca is None:
                    continue
                elif kind == "borrow":
                    await facade_multicall(d, dep, ca, owners[ca], ("increaseDebt", usdc.units(rng.randint(50, 300))))
                    touched = {ca}
                elif kind == "repay":
                    x = usdc.units(rng.randint(10, 200))
                    await mint(d, usdc, owners[ca], x)
                    await approve(d, usdc, owners[ca], dep.credit_manager, x)
                    await facade_multicall(d, dep, ca, owners[ca], ("addCollateral", usdc.address, x),
                                           ("decreaseDebt", x))
                    touched = {ca}
                elif kind == "add":
                    t = rng.choice([weth, wbtc])
                    x = t.units(rng.choice([0.01, 0.1, 0.5]))
                    await mint(d, t, owners[ca], x)
                    await approve(d, t, owners[ca], dep.credit_manager, x)
                    await facade_multicall(d, dep, ca, owners[ca], ("addCollateral", t.address, x))
                    touched = {ca}
                elif kind == "withdraw":
                    t = rng.choice([weth, wbtc])
                    await facade_multicall(d, dep, ca, owners[ca],
                                           ("withdrawCollateral", t.address, t.units(0.01), owners[ca]))
                    touched = {ca}
                elif kind == "quota":
                    t = rng.choice([weth, wbtc])
                    change = usdc.units(rng.choice([-500, -100, 200, 1_000]))
                    await facade_multicall(d, dep, ca, owners[ca], ("updateQuota", t.address, change, 0))
                    touched = {ca}
                elif kind == "donate":  # a plain Transfer to the account, no facade event
                    await mint(d, rng.choice([weth, wbtc, usdc]), ca, 10**6)
                    touched = {ca}
            except DeployError:
                continue  # the facade refused (e.g. the account would become unhealthy): nothing happened
            done[kind] += 1
            before = drv.mir.stats.reread
            chain = await assert_exact(drv, await drv.step())
            assert drv.mir.stats.reread - before == len(touched), kind  # only what the logs name is read
        print("\ngearbox mirror ops:", done, "accounts:", len(ad.accounts), "stats:", drv.mir.stats)
        assert all(done.values()), done
        st = drv.mir.stats
        assert st.confirmed > 0 and st.confirm_mismatches == 0 and st.mismatches == 0
        # A resync compares every account with the chain: none differ; a record gone wrong is found.
        ad.cfg = ad.cfg.model_copy(update={"resync_interval_blocks": 1})
        await d.rpc("evm_mine", [])
        await assert_exact(drv, await drv.step())
        assert (st.resyncs, st.mismatches) == (1, 0)
        victim = next(ca for ca, r in drv.mir.records.items() if r.debt and r.balances.get(weth.address, 0) > 10**17)
        drv.mir.records[victim].balances[weth.address] //= 2
        await d.rpc("evm_mine", [])
        await assert_exact(drv, await drv.step())
        assert (st.resyncs, st.mismatches) == (2, 1)
    finally:
        await keeper.close()


async def test_a_restart_resumes_from_the_stored_rows_and_a_reorg_reads_everyone(deployer, world, tmp_path):
    d, dep = deployer, gearbox(world)
    ca, owner = world.extra["gearbox_accounts"][4], world.extra["gearbox_borrowers"][4]
    keeper = await keeper_for(world, tmp_path)
    try:
        first = keeper.by_name["gearbox_v3"]
        assert isinstance(first, GearboxV3Adapter)
        drv = Driver(keeper.chain, first)
        stored_at = await drv.step()
        assert set(drv.rows) == set(first.accounts)
        # Later: time passes and one account borrows more; a new adapter resumes from the rows.
        await d.rpc("evm_increaseTime", [86_400])
        await facade_multicall(d, dep, ca, owner, ("increaseDebt", dep.underlying.units(100)))
        ad = GearboxV3Adapter(first.cfg, Services(first.liquidator))
        await ad.start(keeper.chain)
        again = Driver(keeper.chain, ad)
        await ad.discover(0, stored_at)
        again.block = stored_at
        ad.restore_mirror(drv.rows, stored_at)
        await assert_exact(again, await again.step())
        assert again.mir.stats.reread == 1  # only the account that borrowed
        ad.forget_state()
        await d.rpc("evm_mine", [])
        await assert_exact(again, await again.step())
        assert again.mir.stats.reread == 1 + len(ad.accounts)
    finally:
        await keeper.close()


async def test_a_restarted_keeper_takes_its_accounts_from_the_store_and_reads_no_old_log(deployer, world, tmp_path):
    """Through the keeper and its SQLite store: the accounts (with their credit managers) and the
    mirror rows come back, and discovery reads no log at or before the checkpoint."""
    d, dep = deployer, gearbox(world)
    db = tmp_path / "keeper.db"
    store = await SqliteStore.open(db)
    keeper = await keeper_for(world, tmp_path, store=store)
    try:
        head = await keeper.chain.block_number()
        await keeper.step(head)
        found = dict(keeper.by_name["gearbox_v3"].accounts)  # type: ignore[attr-defined]
        assert len(found) == len(world.extra["gearbox_accounts"])
    finally:
        await keeper.close()
        await store.close()
    ca, owner = world.extra["gearbox_accounts"][2], world.extra["gearbox_borrowers"][2]
    await facade_multicall(d, dep, ca, owner, ("increaseDebt", dep.underlying.units(100)))
    store = await SqliteStore.open(db)
    keeper = await keeper_for(world, tmp_path, store=store)
    ranges: list[int] = []  # every eth_getLogs fromBlock sent
    batch, request = keeper.rpc.batch, keeper.rpc.request

    async def counting_batch(calls, **kw):
        calls = list(calls)
        ranges.extend(int(p[0]["fromBlock"], 16) for m, p in calls if m == "eth_getLogs")
        return await batch(calls, **kw)
    keeper.rpc.batch = counting_batch  # type: ignore[method-assign]

    async def counting_request(method, params, **kw):
        if method == "eth_getLogs":
            ranges.append(int(params[0]["fromBlock"], 16))
        return await request(method, params, **kw)
    keeper.rpc.request = counting_request  # type: ignore[method-assign]
    try:
        ad = keeper.by_name["gearbox_v3"]
        assert isinstance(ad, GearboxV3Adapter)
        assert {a: st.cm for a, st in ad.accounts.items()} == {a: st.cm for a, st in found.items()}  # before any log
        now = await keeper.chain.block_number()
        await keeper.step(now)
        assert ranges and min(ranges) == head + 1  # nothing at or before the checkpoint read again
        assert ad.mirror is not None and ad.mirror.stats.reread == 1  # only the account that borrowed
        await assert_exact(Driver(keeper.chain, ad), now)
    finally:
        await keeper.close()
        await store.close()


@pytest.fixture
async def proxy(anvil):
    p = await RecordingProxy(anvil.url, free_port()).start()
    yield p
    await p.stop()


async def test_a_quiet_block_costs_the_same_whatever_the_number_of_accounts(deployer, world, tmp_path, proxy):
    d, dep = deployer, gearbox(world)
    world.entries = {"gearbox_v3": gearbox_config_entry(dep)}
    keeper = await make_keeper(world, tmp_path, rpc_url=proxy.url)
    try:
        ad = keeper.by_name["gearbox_v3"]
        assert isinstance(ad, GearboxV3Adapter)
        old = GearboxV3Adapter(ad.cfg.model_copy(update={"incremental": False}), Services(ad.liquidator))
        await old.start(keeper.chain)
        drv, old_drv = Driver(keeper.chain, ad), Driver(keeper.chain, old)

        async def quiet_block() -> tuple[tuple[int, int, int], tuple[int, int, int]]:
            """(POSTs, JSON-RPC requests, bytes) of the mirror's refresh and of the full read."""
            await d.rpc("evm_mine", [])
            block = await keeper.chain.block_number()
            costs = []
            for one in (drv, old_drv):
                await one.ad.discover(one.block + 1, block)
                n = len(proxy.posts)
                await one.ad.refresh(block)
                one.block = block
                posts = proxy.posts[n:]
                costs.append((len(posts), sum(p.entries for p in posts), sum(p.size for p in posts)))
            await assert_exact(drv, block)
            return costs[0], costs[1]

        await drv.step()
        few = len(ad.accounts)
        mirror_few, full_few = await quiet_block()
        for user in world.take_accounts(24):
            await open_credit_account(d, dep, user, 1_500, {"WETH": 1}, {"WETH": 3_000})
        await drv.step()
        many = len(ad.accounts)
        assert many == few + 24
        mirror_many, full_many = await quiet_block()
        print(f"\ngearbox mirror, quiet block: N={few}: mirror {mirror_few}, full read {full_few}; "
              f"N={many}: mirror {mirror_many}, full read {full_many} (POSTs, requests, bytes)")
        assert mirror_few[:2] == mirror_many[:2] == (1, 2)  # one batch: aggregate3 + eth_getLogs
        assert abs(mirror_many[2] - mirror_few[2]) <= 8  # three block tags: their hex digits only
        assert full_many[2] > full_few[2] + 24 * 500  # the full read grows with every account
    finally:
        await keeper.close()


async def test_accounts_holding_a_chain_read_token_are_read_on_chain_every_block(deployer, world, tmp_path):
    d, dep = deployer, gearbox(world)
    wbtc = dep.collaterals["WBTC"]
    keeper = await keeper_for(world, tmp_path)
    try:
        ad = keeper.by_name["gearbox_v3"]
        assert isinstance(ad, GearboxV3Adapter)
        ad.cfg = ad.cfg.model_copy(update={"chain_read_tokens": [wbtc.address]})
        drv = Driver(keeper.chain, ad)
        await drv.step()
        await d.rpc("evm_increaseTime", [3 * 86_400])
        await set_price(d, wbtc, wbtc.price * 8 // 10)
        block = await drv.step()
        with_wbtc = {ca for ca, r in drv.mir.records.items() if r.mask & (1 << ad.managers[r.cm].tokens.index(
            wbtc.address))}
        assert with_wbtc and with_wbtc != set(ad.accounts)
        assert set(drv.mir.health) == set(ad.accounts) - with_wbtc
        reads = drv.mir.stats.chain_reads
        chain = await chain_health(drv.chain, ad.accounts, block)
        for ca, want in chain.items():
            st = ad.accounts[ca]
            assert st.debt is not None and st.block == block
            assert (st.debt.debt, st.debt.accrued_interest, st.debt.accrued_fees, st.total_debt_usd, st.total_value,
                    st.twv_usd, st.liquidatable) == want
            if ca not in with_wbtc:
                assert local_health(drv.mir, ca) == want
        await d.rpc("evm_mine", [])
        await drv.step()
        liquidatable = {ca for ca, h in drv.mir.health.items() if h.liquidatable}
        assert drv.mir.stats.chain_reads - reads == len(with_wbtc | liquidatable)  # read again, every block
    finally:
        await keeper.close()


async def test_with_pyth_feeds_the_mirror_prices_after_the_on_demand_updates(deployer, pyth_world, tmp_path):
    d, dep = deployer, gearbox(pyth_world)
    weth = dep.collaterals["WETH"]
    keeper = await keeper_for(pyth_world, tmp_path)
    try:
        ad = keeper.by_name["gearbox_v3"]
        assert isinstance(ad, GearboxV3Adapter)
        drv = Driver(keeper.chain, ad)
        await drv.step()
        await set_price(d, weth, weth.price * 8 // 10)  # what the pull oracle serves; Pyth still stores the old
        block = await drv.step()
        m = ad.managers[dep.credit_manager]
        assert m.updates and m.prices[weth.address] == weth.price
        calls = []
        for ca in ad.accounts:
            calls += [Call(dep.credit_manager, CDD.encode(ca, 3), CDD.decode),
                      Call(dep.credit_manager, LIQ.encode(ca, 10_000), LIQ.decode)]
        res = await fresh_reads(d, dep, calls, m.updates)
        fresh = {ca: (*(res[2 * i][j] for j in (0, 4, 5, 6, 7, 9)), res[2 * i + 1]) for i, ca in enumerate(ad.accounts)}
        assert {ca: local_health(drv.mir, ca) for ca in ad.accounts} == fresh
        stored = await chain_health(drv.chain, ad.accounts, block)  # without the updates: other figures
        assert any(stored[ca] != fresh[ca] for ca in ad.accounts)
    finally:
        await keeper.close()
