"""The Aave V3 mirror's re-checks around price moves, node-free (synthetic reserves and 2,000
users, WETH and sometimes WBTC collateral, USDC debt): after a move of one price the mirror finds
every user the Pool's maths finds liquidatable while re-checking before planning only the users the
move reached and those near liquidation; the other exposed users are deferred and may wait through
a further move of the same asset; a move of another asset, or a full re-check, re-checks them
before planning."""
from __future__ import annotations

import json
import random

from keeper.protocols.aave_v3.accrual import RAY, MirrorUser, ReserveIndex, account_data
from keeper.protocols.aave_v3.mirror import ROW_VERSION, AaveMirror, ReserveAddrs
from keeper.store.types import MirrorRow

HF_ONE = 10**18
WETH, USDC, WBTC = ("0x" + c * 40 for c in "abc")
RES = {WETH: (0, 18, 8_250, 3_000 * 10**8), USDC: (1, 6, 8_700, 10**8), WBTC: (2, 8, 7_800, 60_000 * 10**8)}


def mirror(n: int) -> AaveMirror:
    m = AaveMirror("0x" + "1" * 40, "0x" + "2" * 40, recheck_blocks=50)
    for a, (i, dec, lt, p) in RES.items():
        m.reserves[a] = ReserveAddrs(a, i, a, a, a)
        m.config[a] = lt << 16 | dec << 48
        m.index[a] = ReserveIndex(RAY * 102 // 100, RAY * 105 // 100, 3 * 10**25, 5 * 10**25, 1_000_000)
        m.prices[a] = p
    m.timestamp = 1_000_012
    rng = random.Random(7)
    for k in range(n):
        u = "0x%040x" % (k + 1)
        mu = MirrorUser()
        weth = rng.uniform(0.5, 50)
        mu.scaled_collateral[WETH] = int(weth * 1e18)
        mu.config |= 2
        if rng.random() < 0.3:
            mu.scaled_collateral[WBTC] = int(rng.uniform(0.01, 1) * 1e8)
            mu.config |= 2 << 4
        mu.scaled_debt[USDC] = int(weth * 3_000 * 0.825 / rng.uniform(1.1, 3.0) * 1e6)
        mu.config |= 1 << 2
        m.users[u] = mu
        m._expose(u)
    return m


def step(m: AaveMirror, moves: dict[str, int]) -> set[str]:
    """One block 12 s later with these prices (in bps of the current ones)."""
    m.stats.blocks += 1
    m.timestamp += 12
    for a, bps in moves.items():
        m.prices[a] = m.prices[a] * bps // 10_000
    return m.recompute(set(), set(moves), m.stats.blocks)


def truth(m: AaveMirror) -> set[str]:
    terms = m.terms()
    return {u for u, mu in m.users.items() if account_data(mu, terms, 0).health_factor < HF_ONE}


def test_one_move_rechecks_the_reached_users_first_and_defers_the_rest():
    m = mirror(2_000)
    step(m, {})  # the first block: a full re-check (account data only)
    assert len(m.data) == 2_000 and not m.deferred and len(m.stale) == 2_000
    m.settle()  # after the plans: the triggers
    assert not m.pending()
    near = {u for u, d in m.data.items() if d.health_factor < 105 * 10**16}
    todo = step(m, {WETH: 8_500})  # WETH -15%
    liquidatable = truth(m)
    assert set(m.liquidatable()) == liquidatable and len(liquidatable) > 50
    assert todo == near | m.triggers.at_risk(WETH, m.prices[WETH])
    assert len(todo) < 2_000 // 3 and m.deferred == set(m.users) - todo

    todo = step(m, {WETH: 9_500})  # WETH again: the deferred users wait
    assert set(m.liquidatable()) == truth(m)
    assert m.deferred and not (todo & m.deferred) and len(todo) < 2_000 // 2
    before = set(m.deferred)
    done = m.settle(100)  # a slice of them, at the prices of the block
    terms = m.terms()
    assert len(done) == 100 and done <= before and m.deferred == before - done
    assert all(m.data[u] == account_data(m.users[u], terms, 0) for u in done)
    left = set(m.deferred)

    todo = step(m, {WBTC: 9_000})  # another asset: everyone left deferred is re-checked first
    # (and WBTC's move defers its own, but for the users whose triggers wait for settle)
    assert left <= todo and m.deferred == m.exposure[WBTC] - m.stale and todo <= m.stale
    assert set(m.liquidatable()) == truth(m)
    terms = m.terms()
    assert all(m.data[u] == account_data(m.users[u], terms, 0) for u in todo)


def test_several_moves_and_full_rechecks_defer_nothing():
    m = mirror(500)
    step(m, {})
    todo = step(m, {WETH: 9_000})  # the triggers are not computed yet: everyone exposed first
    assert todo == set(m.users) and not m.deferred
    m.settle()
    todo = step(m, {WETH: 9_000, WBTC: 9_000})
    assert todo == set(m.users) and not m.deferred
    m.settle()
    step(m, {WETH: 9_000})
    assert m.deferred
    m.stats.blocks = 50  # the next block is a full re-check
    todo = step(m, {WETH: 9_900})
    assert todo == set(m.users) and not m.deferred
    assert set(m.liquidatable()) == truth(m)
    terms = m.terms()
    assert all(m.data[u] == account_data(m.users[u], terms, 0) for u in m.users)


def test_the_users_local_maths_cannot_follow_are_found_without_a_pass_over_everyone():
    """Stable debt (restored or re-read) and, on v3.0-v3.1, an eMode category with its own price
    source: such users are confirmed on chain every block; exact() and inexact_users() agree."""
    m = mirror(50)
    stable, emode = "0x%040x" % 3, "0x%040x" % 4
    m.restore({stable: MirrorRow(stable, ROW_VERSION, 1, json.dumps(
        [m.users[stable].config, 0, {}, {}, {USDC: 10**9}]).encode())}, 1)
    m.users[emode].emode = 1
    m.emode_price_source = {1: "0x" + "00" * 20}
    assert m.inexact_users() == {stable} == {u for u in m.users if not m.exact(u)}
    m.emode_price_source = {1: "0x" + "77" * 20}
    assert m.inexact_users() == {stable, emode} == {u for u in m.users if not m.exact(u)}
