"""Which accounts a price move can make liquidatable, without re-checking every account exposed to
the asset: per asset, the accounts sorted by their trigger price, the price of that asset at which
the account may become liquidatable with every other price held where it was when the trigger was
computed. No protocol knowledge here: an adapter computes the triggers (rounding toward catching
the account: a false candidate costs one recompute, a missed one a lost liquidation) and asks the
index which accounts a move reaches.

A trigger is one of two kinds:
- BELOW t: the account may be liquidatable while the price is below t (the asset weighs on the
  collateral side: a fall hurts);
- ABOVE t: the account may be liquidatable while the price is above t (the asset weighs on the
  debt side: a rise hurts).
``always()`` is a trigger every price reaches (an account the adapter cannot clear at any price).

Entries are kept in ``SortedPairs`` (sorted buckets of bounded size): adding or removing one is a
bisect over the buckets plus an insertion into one bucket, O(log n) comparisons and a move of at
most ``LOAD`` references; a query is a bisect plus the accounts it returns.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

LOAD = 512  # a bucket is split in two past 2 x LOAD entries
INFINITE = 2**256  # a BELOW trigger no price reaches from above: the account is always a candidate
SERIAL_BITS = 40  # accounts per SortedPairs, at most 2^40
SERIAL_MASK = (1 << SERIAL_BITS) - 1


class Kind(Enum):
    BELOW = "below"  # may be liquidatable while price < trigger
    ABOVE = "above"  # may be liquidatable while price > trigger


class Trigger(NamedTuple):
    kind: Kind
    price: int

    def reached(self, price: int) -> bool:
        """Whether the account may be liquidatable at ``price``."""
        return price < self.price if self.kind is Kind.BELOW else price > self.price


def always() -> Trigger:
    return Trigger(Kind.BELOW, INFINITE)


class SortedPairs:
    """(key, account) pairs kept in order (integer keys; accounts ordered by when they were first
    seen): each pair is one integer, key x 2^40 + the account's serial number, in sorted buckets,
    so that an insertion or a removal moves at most 2 x LOAD integers however many pairs there are
    and compares integers only."""

    def __init__(self) -> None:
        self._lists: list[list[int]] = []
        self._maxes: list[int] = []
        self._len = 0
        self._serial: dict[str, int] = {}
        self._names: list[str] = []

    def __len__(self) -> int:
        return self._len

    def _code(self, item: tuple[int, str]) -> int:
        s = self._serial.get(item[1])
        if s is None:
            s = self._serial[item[1]] = len(self._names)
            self._names.append(item[1])
        return (item[0] << SERIAL_BITS) + s

    def _item(self, code: int) -> tuple[int, str]:
        return code >> SERIAL_BITS, self._names[code & SERIAL_MASK]

    def add(self, item: tuple[int, str]) -> None:
        code = self._code(item)
        self._len += 1
        if not self._maxes:
            self._lists.append([code])
            self._maxes.append(code)
            return
        i = bisect_left(self._maxes, code)
        if i == len(self._maxes):
            i -= 1
            self._lists[i].append(code)
            self._maxes[i] = code
        else:
            insort(self._lists[i], code)
        lst = self._lists[i]
        if len(lst) > 2 * LOAD:
            self._lists[i:i + 1] = [lst[:LOAD], lst[LOAD:]]
            self._maxes[i:i + 1] = [lst[LOAD - 1], lst[-1]]

    def remove(self, item: tuple[int, str]) -> None:
        if item[1] not in self._serial:
            raise KeyError(item)
        code = self._code(item)
        i = bisect_left(self._maxes, code)
        if i == len(self._maxes):
            raise KeyError(item)
        lst = self._lists[i]
        j = bisect_left(lst, code)
        if j == len(lst) or lst[j] != code:
            raise KeyError(item)
        del lst[j]
        self._len -= 1
        if not lst:
            del self._lists[i]
            del self._maxes[i]
        elif j == len(lst):
            self._maxes[i] = lst[-1]

    def _position(self, key: int) -> tuple[int, int]:
        """(bucket, index) of the first pair whose key >= ``key``."""
        code = key << SERIAL_BITS
        i = bisect_left(self._maxes, code)
        if i == len(self._maxes):
            return i, 0
        return i, bisect_left(self._lists[i], code)

    def below(self, key: int) -> Iterator[tuple[int, str]]:
        """Pairs whose key < ``key``, in order."""
        bi, j = self._position(key)
        for b in range(bi):
            yield from map(self._item, self._lists[b])
        if bi < len(self._lists):
            yield from map(self._item, self._lists[bi][:j])

    def from_key(self, key: int) -> Iterator[tuple[int, str]]:
        """Pairs whose key >= ``key``, in order."""
        bi, j = self._position(key)
        if bi < len(self._lists):
            yield from map(self._item, self._lists[bi][j:])
            for b in range(bi + 1, len(self._lists)):
                yield from map(self._item, self._lists[b])

    def between(self, lo: int, hi: int) -> Iterator[tuple[int, str]]:
        """Pairs whose key is in [lo, hi)."""
        for item in self.from_key(lo):
            if item[0] >= hi:
                return
            yield item

    def __iter__(self) -> Iterator[tuple[int, str]]:
        for lst in self._lists:
            yield from map(self._item, lst)


@dataclass
class _Book:
    below: SortedPairs = field(default_factory=SortedPairs)
    above: SortedPairs = field(default_factory=SortedPairs)

    def pairs(self, kind: Kind) -> SortedPairs:
        return self.below if kind is Kind.BELOW else self.above


class LiquidationPriceIndex:
    """Per asset, the accounts exposed to it sorted by their trigger price."""

    def __init__(self) -> None:
        self._books: dict[str, _Book] = {}
        self._entries: dict[str, dict[str, Trigger]] = {}  # account -> asset -> trigger

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, account: object) -> bool:
        return account in self._entries

    def accounts(self) -> Iterable[str]:
        return self._entries.keys()

    def triggers(self, account: str) -> Mapping[str, Trigger]:
        return self._entries.get(account, {})

    def put(self, account: str, triggers: Mapping[str, Trigger]) -> None:
        """The account's triggers, replacing those it had (an asset left out has none: no price of
        it alone can make the account liquidatable)."""
        old = self._entries.get(account, {})
        for asset, t in old.items():
            if triggers.get(asset) != t:
                self._books[asset].pairs(t.kind).remove((t.price, account))
        for asset, t in triggers.items():
            if old.get(asset) != t:
                self._books.setdefault(asset, _Book()).pairs(t.kind).add((t.price, account))
        if triggers:
            self._entries[account] = dict(triggers)
        else:
            self._entries.pop(account, None)

    def remove(self, account: str) -> None:
        self.put(account, {})

    def at_risk(self, asset: str, price: int) -> set[str]:
        """Every account whose trigger for ``asset`` is reached at ``price``."""
        book = self._books.get(asset)
        if book is None:
            return set()
        out = {a for _, a in book.below.from_key(price + 1)}
        out.update(a for _, a in book.above.below(price))
        return out

    def crossed(self, asset: str, old: int, new: int) -> set[str]:
        """The accounts a move of ``asset`` from ``old`` to ``new`` reaches that ``old`` did not:
        a fall reaches BELOW triggers in (new, old], a rise ABOVE triggers in [old, new)."""
        book = self._books.get(asset)
        if book is None or old == new:
            return set()
        if new < old:
            return {a for _, a in book.below.between(new + 1, old + 1)}
        return {a for _, a in book.above.between(old, new)}
