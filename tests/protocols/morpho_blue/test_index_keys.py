"""Morpho Blue's durable index keys (node-free): what discovery found (markets with what the
adapter read of them, borrowers) comes back from the store's keys; keys it cannot take, or a market
configured since the keys were written, make it refuse (discovery then reads the logs again)."""
from __future__ import annotations

from keeper.protocols.base import Services
from keeper.protocols.morpho_blue.adapter import MarketState, MorphoBlueAdapter, market_id
from keeper.protocols.morpho_blue.config import MorphoBlueConfig

LOAN, COLL, ORACLE, IRM = ("0x" + c * 40 for c in "1234")
PARAMS = (LOAN, COLL, ORACLE, IRM, 86 * 10**16)
OTHER = (LOAN, COLL, ORACLE, IRM, 77 * 10**16)
BORROWERS = {"0x" + "a" * 40, "0x" + "b" * 40}


def adapter(markets: list[tuple] = ()) -> MorphoBlueAdapter:
    cfg = MorphoBlueConfig(kind="morpho_blue", morpho="0x" + "9" * 40,
                           markets=["0x" + market_id(p).hex() for p in markets])
    a = MorphoBlueAdapter(cfg, Services(liquidator="0x" + "5" * 40))
    for p in markets:  # what start() resolves for configured markets
        a.markets[market_id(p)] = MarketState(market_id(p), p)
    return a


def found() -> MorphoBlueAdapter:
    """An adapter after discovery: one market found from CreateMarket, its borrowers."""
    a = adapter()
    m = MarketState(market_id(PARAMS), PARAMS, 6, 18, "USDC", "WETH", borrowers=set(BORROWERS))
    a.markets[m.id] = m
    return a


def test_markets_and_borrowers_come_back_from_the_keys():
    keys = found().account_keys()
    b = adapter()
    assert b.restore_accounts(keys)
    (m,) = b.markets.values()
    assert (m.id, m.params, m.loan_decimals, m.coll_decimals, m.loan_symbol, m.coll_symbol) == (
        market_id(PARAMS), PARAMS, 6, 18, "USDC", "WETH")
    assert m.borrowers == BORROWERS and b.account_keys() == keys


def test_keys_it_cannot_take_are_refused():
    keys = found().account_keys()
    forged = {k.replace(str(86 * 10**16), str(91 * 10**16)) for k in keys}  # parameters that do not hash to the id
    assert not adapter().restore_accounts(forged)
    assert not adapter().restore_accounts(keys | {"something else"})


def test_a_market_configured_since_refuses_so_that_its_older_logs_are_read():
    keys = found().account_keys()
    assert adapter([PARAMS]).restore_accounts(keys)
    assert not adapter([PARAMS, OTHER]).restore_accounts(keys)
