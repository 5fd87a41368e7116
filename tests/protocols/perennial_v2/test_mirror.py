"""The incremental Perennial V2 mirror against the stand-ins: after random opens and closes,
collateral deposits and withdrawals, price moves with committed versions, time passing (funding)
and the keeper's own liquidations, every account's settled position and collateral in the mirror
equal the Market's (settle then read, at the same block) and so does the maintenance verdict (the
Market's own: a protected close is accepted exactly when the mirror says the account is below
maintenance). A quiet block costs the same number of JSON-RPC requests with 6 accounts as with 71
(the full read it replaces grows with them)."""
from __future__ import annotations

import copy
from dataclasses import replace
import os
import random
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from eth_account import Account
from keeper_devnet.deploy import DeployError
from keeper_devnet.protocols.perennial_v2.world import (
    DEMO_UNHEALTHY,
    UNIT,
    PerennialDeployment,
    add_perennial_to_world,
    commit_invalid,
    commit_price,
    deposit_and_trade,
    now,
    oracle_call,
    perennial_config_entry,
    settle,
)
from keeper_devnet.tokens import set_price
from keeper_devnet.world import KEEPER_ADDRESS, World, bare_world

from keeper.chain.client import Chain
from keeper.chain.counting import CountingTransport
from keeper.chain.multicall import Call
from keeper.chain.rpc import HttpTransport, Rpc
from keeper.protocols.perennial_v2 import maths as pm
from keeper.protocols.perennial_v2.adapter import PerennialV2Adapter
from keeper.protocols.perennial_v2.routing import MARKET, ORACLE
from keeper.store import SqliteStore
from keeper.store.types import MirrorRow
from tests.helpers.keeper import make_keeper

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
async def perennial_world(deployer) -> World:
    world = await bare_world(deployer)
    await add_perennial_to_world(deployer, world)
    return world


@pytest.fixture
async def world(perennial_world, snapshot):
    yield copy.deepcopy(perennial_world)


class Requests:
    """An RpcObserver counting JSON-RPC requests per method."""

    def __init__(self) -> None:
        self.by_method: Counter[str] = Counter()

    def rpc_call(self, endpoint: str, method: str, ok: bool) -> None:
        self.by_method[method] += 1

    def tx_sent(self, tx_hash: str) -> None:
        pass

    def tx_mined(self, tx_hash: str, status: int) -> None:
        pass


async def keeper_for(world: World, tmp_path, **kw):
    world.entries = {"perennial_v2": perennial_config_entry(world.extra["perennial"])}
    keeper = await make_keeper(world, tmp_path, **kw)
    adapter = keeper.by_name["perennial_v2"]
    assert isinstance(adapter, PerennialV2Adapter)
    return keeper, adapter


async def chain_view(adapter: PerennialV2Adapter, block: int) -> dict[str, tuple[pm.Position, int, int]]:
    """Each account as the Market has it once settled: (position, collateral, pending orders)."""
    assert adapter.chain
    (market,) = adapter.markets
    f = MARKET.fn
    users = sorted(adapter.markets[market].accounts)
    calls = []
    for u in users:
        calls += [Call(market, f("settle").encode(u), None),
                  Call(market, f("positions").encode(u), f("positions").decode),
                  Call(market, f("locals").encode(u), f("locals").decode),
                  Call(market, f("pendings").encode(u), f("pendings").decode)]
    res = await adapter.chain.multicall(calls, block)
    return {u: (pm.Position(*res[4 * i + 1]), res[4 * i + 2][2], res[4 * i + 3][1]) for i, u in enumerate(users)}


def mirror_view(adapter: PerennialV2Adapter) -> dict[str, tuple[pm.Position, int, int]]:
    (m,) = adapter.markets.values()
    out = {}
    for u, st in sorted(m.accounts.items()):
        assert st.position is not None and st.local is not None, u
        out[u] = (st.position, st.local.collateral, st.pending_orders)
    return out


async def market_verdicts(deployer, adapter: PerennialV2Adapter, block: int) -> dict[str, bool] | None:
    """The Market's own verdict at ``block`` on every account with a settled position and no pending
    order: a protected full close (eth_call from the keeper) is accepted iff the account is below
    maintenance at the latest version. None when the oracle is stale (every close is refused)."""
    assert adapter.chain
    (m,) = adapter.markets.values()
    (latest, current), = await adapter.chain.multicall_strict(
        [Call(m.r.oracle, ORACLE.fn("status").encode(), ORACLE.fn("status").decode)], block)
    risk = pm.Risk.from_tuple((await adapter.chain.multicall_strict(
        [Call(m.market, MARKET.fn("riskParameter").encode(), MARKET.fn("riskParameter").decode)], block))[0])
    if pm.is_stale(current, latest[0], latest[2], risk.stale_after):
        return None
    out = {}
    for u, st in m.accounts.items():
        if st.position is None or not st.position.magnitude or st.pending_orders:
            continue
        tx = {"from": KEEPER_ADDRESS, "to": m.market, "data": "0x" + MARKET.fn("update").encode(u, 0, 0, 0, 0,
                                                                                                 True).hex()}
        try:
            await deployer.w3.eth.call(tx, block)
            out[u] = True
        except Exception:
            out[u] = False
    return out


def mirror_verdicts(adapter: PerennialV2Adapter, accounts: set[str]) -> dict[str, bool]:
    (m,) = adapter.markets.values()
    assert m.latest and m.risk
    return {u: not pm.maintained(st.position, m.latest.latest_price, m.risk, st.local.collateral)
            for u, st in m.accounts.items() if u in accounts and st.position and st.local}


async def new_trader(deployer) -> str:
    a = Account.create().address
    await deployer.rpc("anvil_impersonateAccount", [a])
    await deployer.rpc("anvil_setBalance", [a, hex(10**20)])
    return a


async def commit_all(deployer, dep: PerennialDeployment, price: int,
                     after: Callable[[], Awaitable[None]] | None = None) -> None:
    """Commit every requested version (invalid once timed out), then a fresh version at ``price``;
    ``after`` runs after each commit (the keeper following every block)."""
    while nxt := await oracle_call(deployer, dep, "next"):
        if await now(deployer) > nxt + dep.oracle_params.timeout:
            await commit_invalid(deployer, dep)
        else:
            await commit_price(deployer, dep, price)
        if after is not None:
            await after()
    await commit_price(deployer, dep, price)


async def check(deployer, keeper, adapter: PerennialV2Adapter, block: int, what: str) -> int:
    mine, chain = mirror_view(adapter), await chain_view(adapter, block)
    assert mine == chain, f"{what}: " + str({u: (mine[u], chain[u]) for u in mine if mine[u] != chain.get(u)})
    verdicts = await market_verdicts(deployer, adapter, block)
    if verdicts is None:
        return 0
    assert mirror_verdicts(adapter, set(verdicts)) == verdicts, what
    return sum(verdicts.values())


async def test_random_operations_keep_the_perennial_mirror_exact(deployer, world, tmp_path):
    rng = random.Random(int(os.environ.get("MIRROR_SEED", "23")))
    dep: PerennialDeployment = world.extra["perennial"]
    users = list(world.extra["perennial_accounts"]) + [await new_trader(deployer) for _ in range(4)]
    keeper, adapter = await keeper_for(world, tmp_path)
    assert adapter.cfg.incremental and adapter.mirror is not None
    adapter.cfg = adapter.cfg.model_copy(update={"resync_interval_blocks": 7})
    price = dep.weth.price
    plan = ["open", "close", "deposit", "withdraw", "commit", "time", "open", "commit", "settle", "commit2"] * 4
    rng.shuffle(plan)
    plan += ["settle", "crash", "commit", "time", "commit"]  # below maintenance: the keeper liquidates
    done: list[str] = []
    below = 0

    async def follow(what: str) -> None:
        nonlocal below
        if dep.weth.price != price:
            await set_price(deployer, dep.weth, price)  # the pull oracle (MockPyth) answers the same price
        block = await keeper.chain.block_number()
        await keeper.step(block)
        await keeper.settle()
        below += await check(deployer, keeper, adapter, block, what)
        after = await keeper.chain.block_number()
        while after > block:  # the keeper sent transactions: the next step mirrors their logs
            block = after
            await keeper.step(block)
            await keeper.settle()
            below += await check(deployer, keeper, adapter, block, f"after {what}")
            after = await keeper.chain.block_number()

    try:
        await commit_all(deployer, dep, price)
        await follow("start")
        for n, kind in enumerate(plan):
            u = rng.choice(users)

            async def between() -> None:
                await follow(f"step {n}: {kind} (a commit)")  # noqa: B023
            try:
                if kind == "open":
                    size = rng.randint(1, 20) * UNIT // 10
                    side = rng.choice(["long", "short"])
                    await deposit_and_trade(deployer, dep, u, long=size if side == "long" else 0,
                                            short=size if side == "short" else 0,
                                            collateral=rng.randint(300, 1_500) * UNIT)
                elif kind == "settle":  # what settlement keepers do (KeeperFactory.settle's callbacks)
                    await settle(deployer, dep, rng.sample(users, len(users) // 2))
                elif kind == "close":
                    await deposit_and_trade(deployer, dep, u)
                elif kind == "deposit":
                    await deposit_and_trade(deployer, dep, u, collateral=rng.randint(10, 500) * UNIT)
                elif kind == "withdraw":
                    await deposit_and_trade(deployer, dep, u, collateral=-rng.randint(10, 200) * UNIT)
                elif kind == "time":
                    await deployer.rpc("evm_increaseTime", [rng.randint(3_600, 20 * 86_400)])
                    await deployer.rpc("evm_mine", [])
                    await commit_all(deployer, dep, price, between)
                elif kind == "commit2":  # several versions settle between two blocks the keeper sees
                    price = price * rng.randint(95, 105) // 100
                    await commit_all(deployer, dep, price)
                elif kind == "crash":
                    price = price * 70 // 100
                    await commit_all(deployer, dep, price, between)
                else:
                    price = price * rng.randint(90, 110) // 100
                    await commit_all(deployer, dep, price, between)
            except DeployError:
                continue  # the Market refused it (margin, stale price, nothing to close)
            done.append(kind)
            await follow(f"step {n}: {kind}")
    finally:
        await keeper.close()
    s = adapter.mirror.stats
    print(f"\nperennial mirror: {s}, {below} account checks below maintenance, steps {done}")
    assert {"open", "close", "deposit", "commit", "time", "settle"} <= set(done)
    assert [o for o in keeper.recorder.outcomes if o.tx_hash], "the crash should have made a liquidation"
    assert s.rechecked > 0, "quiet accounts should have been moved to new versions locally"
    assert s.resyncs > 0
    assert s.mismatches == 0 and s.confirm_mismatches == 0
    assert s.multistep > 0 and s.fallbacks == 0
    assert s.reread < s.blocks * len(users)


async def quiet_requests(deployer, adapter: PerennialV2Adapter, url: str) -> Counter[str]:
    """The requests of one refresh at a block with no transaction (after one that mirrors the head),
    through a chain of its own that counts them (the keeper's other users of its chain are left out)."""
    assert adapter.chain
    shared = adapter.chain
    await adapter.refresh(await shared.block_number())
    await deployer.rpc("evm_mine", [])
    block = await shared.block_number()
    counter = Requests()
    adapter.chain = Chain(Rpc(transport=CountingTransport(HttpTransport(url), counter, "node")),
                          multicall_address=shared.multicall_address, multicall_chunk=shared.multicall_chunk,
                          log_chunk_blocks=shared.log_chunk_blocks)
    try:
        await adapter.refresh(block)
        counter.by_method["(round trips)"] = adapter.chain.rpc.requests
    finally:
        await adapter.chain.rpc.close()
        adapter.chain = shared
    return counter.by_method


async def test_a_quiet_block_costs_the_same_whatever_the_number_of_accounts(deployer, world, tmp_path):
    dep: PerennialDeployment = world.extra["perennial"]
    keeper, adapter = await keeper_for(world, tmp_path)
    try:
        assert adapter.mirror is not None
        mirror = adapter.mirror
        await adapter.discover(0, await keeper.chain.block_number())
        few = len(next(iter(adapter.markets.values())).accounts)
        incremental_few = await quiet_requests(deployer, adapter, world.url)
        adapter.mirror = None
        full_few = await quiet_requests(deployer, adapter, world.url)
        for _ in range(65):  # past one full-read group (60 accounts per eth_call)
            u = await new_trader(deployer)
            await deposit_and_trade(deployer, dep, u, long=UNIT // 10, collateral=500 * UNIT)
            # committed at once: a version's publish window is 10 s, which 65 trades can outlast on a
            # loaded machine (the commit of an early version is then refused as out of range)
            while await oracle_call(deployer, dep, "next"):
                await commit_price(deployer, dep)
        head = await keeper.chain.block_number()
        await adapter.discover(0, head)
        many = len(next(iter(adapter.markets.values())).accounts)
        full_many = await quiet_requests(deployer, adapter, world.url)
        adapter.mirror = mirror
        incremental_many = await quiet_requests(deployer, adapter, world.url)
    finally:
        await keeper.close()
    def show(c: Counter[str]) -> str:
        return f"{sum(v for k, v in c.items() if k[0] != '(')} requests in {c['(round trips)']} round trips"
    print(f"\nperennial quiet block: incremental {show(incremental_few)} at {few} accounts, "
          f"{show(incremental_many)} at {many}; full read {show(full_few)} at {few}, {show(full_many)} at {many}; "
          f"incremental {dict(incremental_many)}, full {dict(full_many)}")
    assert many == few + 65
    assert incremental_many == incremental_few
    assert incremental_few["(round trips)"] == 2
    assert full_many["eth_call"] > full_few["eth_call"]
    assert incremental_few["eth_call"] < full_few["eth_call"]


async def test_resync_counts_and_repairs_a_wrong_account(deployer, world, tmp_path):
    """A mirror gone wrong (an anchor off by one unit) is found by the periodic resync, counted, and
    replaced by the Market's view."""
    dep: PerennialDeployment = world.extra["perennial"]
    keeper, adapter = await keeper_for(world, tmp_path)
    try:
        mirror = adapter.mirror
        assert mirror is not None
        adapter.cfg = adapter.cfg.model_copy(update={"resync_interval_blocks": 3})
        users = world.extra["perennial_accounts"]
        await commit_all(deployer, dep, dep.weth.price)
        await keeper.step(await keeper.chain.block_number())
        await settle(deployer, dep, users)  # anchored at the mirror's version from now on
        await keeper.step(await keeper.chain.block_number())
        (market,) = adapter.markets
        mm = mirror.markets[market]
        victim = users[2]
        anchor = mm.anchors[victim]
        assert anchor is not None, "an account settled on chain is anchored"
        mm.anchors[victim] = replace(anchor, collateral=anchor.collateral + 1)
        await commit_all(deployer, dep, dep.weth.price * 99 // 100)  # moves every account locally
        block = await keeper.chain.block_number()
        await adapter.refresh(block)
        assert mirror_view(adapter) != await chain_view(adapter, block), "the wrong anchor shows"
        before = mirror.stats.resyncs
        while mirror.stats.resyncs == before:
            await deployer.rpc("evm_mine", [])
            block = await keeper.chain.block_number()
            await adapter.refresh(block)
        assert mirror.stats.mismatches == 1
        assert mirror_view(adapter) == await chain_view(adapter, block)
    finally:
        await keeper.close()


async def test_restored_mirror_continues_with_the_accounts_named_since(deployer, world, tmp_path):
    """mirror_rows of one run, restored in the next at the block they were valid: only the accounts
    the logs name since then are read, and every account equals the Market's view."""
    dep: PerennialDeployment = world.extra["perennial"]
    users = world.extra["perennial_accounts"]
    keeper, adapter = await keeper_for(world, tmp_path)
    rows: dict[str, MirrorRow] = {}
    produce = adapter.mirror_rows

    def stored() -> list[MirrorRow]:  # what the store keeps: each key's latest row
        out = produce()
        rows.update({r.key: r for r in out})
        return out
    adapter.mirror_rows = stored  # type: ignore[method-assign]
    try:
        await commit_all(deployer, dep, dep.weth.price)
        await keeper.step(await keeper.chain.block_number())
        await settle(deployer, dep, users)
        await keeper.step(await keeper.chain.block_number())
        await commit_all(deployer, dep, dep.weth.price * 98 // 100)  # accounts moved locally, not stored again
        block = await keeper.chain.block_number()
        await keeper.step(block)
        stored()
    finally:
        await keeper.close()
    assert len(rows) == len(users) + 1  # the accounts and the market
    await deposit_and_trade(deployer, dep, users[3], collateral=50 * UNIT)
    await commit_price(deployer, dep, dep.weth.price * 102 // 100)  # the deposit's version: one step
    (tmp_path / "again").mkdir()
    keeper, adapter = await keeper_for(world, tmp_path / "again")
    try:
        adapter.restore_mirror(rows, block)
        head = await keeper.chain.block_number()
        await adapter.discover(0, head)
        await adapter.refresh(head)
        assert adapter.mirror is not None
        assert adapter.mirror.stats.reread == 1 and adapter.mirror.stats.fallbacks == 0  # the depositor only
        assert mirror_view(adapter) == await chain_view(adapter, head)
    finally:
        await keeper.close()


async def test_local_verdicts_are_confirmed_on_chain_before_planning(deployer, world, tmp_path):
    """Accounts anchored on chain and moved to a crash price locally: the ones the mirror finds below
    maintenance, and only those, are read from the Market before the keeper plans their closes."""
    dep: PerennialDeployment = world.extra["perennial"]
    users = world.extra["perennial_accounts"]
    keeper, adapter = await keeper_for(world, tmp_path)
    try:
        mirror = adapter.mirror
        assert mirror is not None
        await commit_all(deployer, dep, dep.weth.price)
        await keeper.step(await keeper.chain.block_number())
        await settle(deployer, dep, users)
        await keeper.step(await keeper.chain.block_number())
        (market,) = adapter.markets
        assert all(mirror.markets[market].anchors[u] is not None for u in users)
        before = mirror.stats.reread
        await set_price(deployer, dep.weth, dep.weth.price * 70 // 100)  # what MockPyth's updates carry
        await commit_price(deployer, dep, dep.weth.price)
        block = await keeper.chain.block_number()
        await keeper.step(block)
        await keeper.settle()
        assert mirror.stats.confirms == len(DEMO_UNHEALTHY) and mirror.stats.confirm_mismatches == 0
        assert mirror.stats.reread - before == len(DEMO_UNHEALTHY)  # those only
        assert {a for o in keeper.recorder.outcomes if o.tx_hash for a in o.accounts} == {users[i] for i in DEMO_UNHEALTHY}
    finally:
        await keeper.close()


async def test_a_restarted_keeper_takes_its_accounts_from_the_store_and_reads_no_old_log(deployer, world,
                                                                                         tmp_path):
    """Through the keeper and its SQLite store: markets, accounts and mirror rows come back, and
    discovery reads no log at or before the checkpoint; only the account named since is read."""
    dep: PerennialDeployment = world.extra["perennial"]
    users = world.extra["perennial_accounts"]
    db = tmp_path / "keeper.db"
    store = await SqliteStore.open(db)
    keeper, adapter = await keeper_for(world, tmp_path, store=store)
    try:
        await commit_all(deployer, dep, dep.weth.price)
        await keeper.step(await keeper.chain.block_number())
        await settle(deployer, dep, users)  # settled on chain: a new version alone does not name them
        head = await keeper.chain.block_number()
        await keeper.step(head)
        found = {m: set(s.accounts) for m, s in adapter.markets.items()}
        assert sum(map(len, found.values())) == len(users)
    finally:
        await keeper.close()
        await store.close()
    await deposit_and_trade(deployer, dep, users[3], collateral=50 * UNIT)
    await commit_price(deployer, dep, dep.weth.price * 102 // 100)
    (tmp_path / "again").mkdir()
    store = await SqliteStore.open(db)
    keeper, adapter = await keeper_for(world, tmp_path / "again", store=store)
    ranges: list[int] = []  # every eth_getLogs fromBlock sent
    batch, request = keeper.rpc.batch, keeper.rpc.request

    async def counting_batch(calls, **kw):
        calls = list(calls)
        ranges.extend(int(p[0]["fromBlock"], 16) for m, p in calls if m == "eth_getLogs")
        return await batch(calls, **kw)

    async def counting_request(method, params, **kw):
        if method == "eth_getLogs":
            ranges.append(int(params[0]["fromBlock"], 16))
        return await request(method, params, **kw)
    keeper.rpc.batch = counting_batch  # type: ignore[method-assign]
    keeper.rpc.request = counting_request  # type: ignore[method-assign]
    try:
        assert {m: set(s.accounts) for m, s in adapter.markets.items()} == found  # before any log is read
        now = await keeper.chain.block_number()
        await keeper.step(now)
        assert ranges and min(ranges) == head + 1  # nothing at or before the checkpoint read again
        assert adapter.mirror is not None and adapter.mirror.stats.reread == 1  # the depositor only
        assert mirror_view(adapter) == await chain_view(adapter, now)
    finally:
        await keeper.close()
        await store.close()
