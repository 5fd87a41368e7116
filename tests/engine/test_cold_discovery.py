"""Cold discovery on the real Aave world: logs read window by window (ten log_chunk_blocks ranges
per batch), a progress line (blocks done of total, accounts found, rate, ETA), and an interrupted
discovery resumed from its last window's checkpoint without reading earlier blocks again, finding
the same accounts as an uninterrupted one."""
from __future__ import annotations

import copy

import pytest
from eth_account import Account
from structlog.testing import capture_logs

from keeper.chain.signer import Signer
from keeper.config import load_config
from keeper.engine.daemon import Keeper
from keeper.engine.discover import Discovery
from keeper.store import SqliteStore
from keeper_devnet.world import KEEPER_KEY, config_text, open_position

CHUNK = 2  # blocks per eth_getLogs range: a window is 20 blocks


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


def keeper_for(world, tmp_path) -> Keeper:
    path = tmp_path / "keeper.toml"
    path.write_text(config_text(world).replace("[chain]\n", f"[chain]\nlog_chunk_blocks = {CHUNK}\n"))
    return Keeper(load_config(path), Signer(Account.from_key(KEEPER_KEY)))


async def test_interrupted_cold_discovery_resumes_chunk_by_chunk(deployer, world, tmp_path):
    users = world.take_accounts(3)
    for u in users:
        await open_position(deployer, world, u, {"WETH": 10}, {"USDC": 5_000})
    keeper = keeper_for(world, tmp_path)
    try:
        await keeper.start()
        head = await keeper.chain.block_number()
        assert head > 3 * CHUNK * 10  # several windows
        # Reference: one uninterrupted cold discovery, no store.
        plain = Discovery(keeper.adapters, progress_every=0)
        with capture_logs() as logs:
            await plain.advance(head, keeper.chain)
        expected = keeper.adapters[0].account_keys()
        assert set(users) <= expected
        lines = [e for e in logs if e["event"] == "discover.progress"]
        assert lines and lines[-1]["blocks"] == f"{head + 1}/{head + 1}"
        assert lines[-1]["accounts"] == len(expected) and "eta_s" in lines[-1] and "rate_blocks_s" in lines[-1]

        # Interrupted after the second window: the store has the first two windows' checkpoint.
        keeper.adapters[0].users.clear()  # type: ignore[attr-defined]
        store = await SqliteStore.open(tmp_path / "keeper.db")
        batch = keeper.rpc.batch
        calls = {"logs": 0}
        froms: list[int] = []

        async def failing(reqs, **kw):
            reqs = list(reqs)
            got = [int(p[0]["fromBlock"], 16) for m, p in reqs if m == "eth_getLogs"]
            if got:
                calls["logs"] += 1
                if calls["logs"] == 3:
                    raise ConnectionError("node went away")
                froms.extend(got)
            return await batch(reqs, **kw)
        keeper.rpc.batch = failing  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await Discovery(keeper.adapters, store).advance(head, keeper.chain)
        cp = await store.checkpoint("aave_v3", "discovery")
        assert cp is not None and cp.block == 2 * CHUNK * 10 - 1

        # A new run resumes after it.
        keeper.adapters[0].users.clear()  # type: ignore[attr-defined]
        froms.clear()
        again = Discovery(keeper.adapters, store)
        await again.load()
        await again.advance(head, keeper.chain)
        assert min(froms) == cp.block + 1
        assert keeper.adapters[0].account_keys() == expected
        assert set(await store.accounts("aave_v3")) == expected
        await store.close()
    finally:
        await keeper.close()
