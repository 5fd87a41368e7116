"""The generic trigger-price index (keeper.protocols.price_index), node-free: its bisect queries
against a brute force over random triggers, through adds, moves and removals; and the sorted
buckets under it against a plain sorted list."""
from __future__ import annotations

import random

import pytest

from keeper.protocols import price_index as pi
from keeper.protocols.price_index import Kind, LiquidationPriceIndex, SortedPairs, Trigger, always


def brute_at_risk(entries: dict[str, dict[str, Trigger]], asset: str, price: int) -> set[str]:
    return {a for a, ts in entries.items() if asset in ts and ts[asset].reached(price)}


@pytest.fixture
def small_buckets(monkeypatch):
    monkeypatch.setattr(pi, "LOAD", 4)  # many buckets, splits and emptied buckets with few entries


def test_sorted_pairs_match_a_sorted_list(small_buckets):
    rng = random.Random(3)
    sp, ref = SortedPairs(), []
    for step in range(3_000):
        if ref and rng.random() < 0.4:
            item = ref.pop(rng.randrange(len(ref)))
            sp.remove(item)
        else:
            item = (rng.randint(-5, 60), f"a{step:05d}")  # equal keys: in the order first seen
            sp.add(item)
            ref.append(item)
        ref.sort()
        if step % 50 == 0:
            assert list(sp) == ref and len(sp) == len(ref)
            k = rng.randint(-6, 61)
            assert list(sp.below(k)) == [x for x in ref if x[0] < k]
            assert list(sp.from_key(k)) == [x for x in ref if x[0] >= k]
            lo = rng.randint(-6, 61)
            assert list(sp.between(lo, lo + 7)) == [x for x in ref if lo <= x[0] < lo + 7]
    with pytest.raises(KeyError):
        sp.remove((1000, "nobody"))


def test_queries_match_brute_force_through_updates(small_buckets):
    rng = random.Random(11)
    idx = LiquidationPriceIndex()
    entries: dict[str, dict[str, Trigger]] = {}
    assets = ["A", "B", "C"]
    for step in range(2_000):
        acct = f"u{rng.randrange(300)}"
        if rng.random() < 0.15:
            idx.remove(acct)
            entries.pop(acct, None)
        else:
            ts = {}
            for a in rng.sample(assets, rng.randint(0, 3)):
                ts[a] = always() if rng.random() < 0.03 else Trigger(rng.choice(list(Kind)), rng.randint(0, 1_000))
            idx.put(acct, ts)
            if ts:
                entries[acct] = ts
            else:
                entries.pop(acct, None)
        if step % 20 == 0:
            asset = rng.choice(assets)
            old, new = rng.randint(0, 1_000), rng.randint(0, 1_000)
            assert idx.at_risk(asset, new) == brute_at_risk(entries, asset, new)
            crossed = {a for a, ts in entries.items() if asset in ts and old != new
                       and ts[asset].reached(new) and not ts[asset].reached(old) and ts[asset].price != pi.INFINITE}
            assert idx.crossed(asset, old, new) == crossed
            assert len(idx) == len(entries)
            assert all(idx.triggers(a) == ts for a, ts in entries.items())


def test_boundaries_of_each_kind():
    idx = LiquidationPriceIndex()
    idx.put("coll", {"X": Trigger(Kind.BELOW, 100)})  # liquidatable while X < 100
    idx.put("debt", {"X": Trigger(Kind.ABOVE, 200)})  # liquidatable while X > 200
    idx.put("lost", {"X": always()})
    assert idx.at_risk("X", 100) == {"lost"}
    assert idx.at_risk("X", 99) == {"coll", "lost"}
    assert idx.at_risk("X", 200) == {"lost"}
    assert idx.at_risk("X", 201) == {"debt", "lost"}
    assert idx.crossed("X", 150, 100) == set() and idx.crossed("X", 100, 99) == {"coll"}
    assert idx.crossed("X", 150, 201) == {"debt"} and idx.crossed("X", 201, 250) == set()
    assert idx.at_risk("Y", 1) == set()
    idx.put("coll", {"X": Trigger(Kind.BELOW, 50)})  # moved: found at its new place only
    assert idx.at_risk("X", 60) == {"lost"} and idx.at_risk("X", 49) == {"coll", "lost"}
