"""Compound III without a chain: the integer maths (edges and rounding), the config entry, and the
adapter's planning (batches, budget, reserves rule, switch) on a hand-set market state."""
from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from eth_utils import keccak, to_checksum_address

from keeper.config import load_config
from keeper.errors import ConfigError
from keeper.protocols.base import (
    Assessment,
    Covered,
    Plan,
    PlanKind,
    Planned,
    Services,
    Skip,
    SkipCode,
)
from keeper.protocols.compound_v3 import maths as cm
from keeper.protocols.compound_v3.adapter import (
    ACCRUAL_NOTE,
    NOT_FOR_SALE,
    AbsorbDetails,
    AccountState,
    AssetState,
    CompoundV3Adapter,
)
from keeper.protocols.compound_v3.config import CompoundV3Config

F = 10**18
EXAMPLE = Path(__file__).resolve().parents[3] / "config.example.toml"


def addr(n: int) -> str:
    return to_checksum_address(f"0x{n:040x}")


COMET, KEEPER, USDC, WETH, WBTC = addr(0xC0), addr(0xEE), addr(0x05D), addr(0xE7), addr(0xB7)


# ---- maths ------------------------------------------------------------------------------------

def test_max_base_for_is_the_exact_edge():
    rng = random.Random(7)
    for _ in range(3_000):
        sf = cm.StoreFront(asset_price=rng.randint(1, 10**13), base_price=rng.randint(1, 10**9),
                           scale=10 ** rng.choice([0, 6, 8, 18]), base_scale=10 ** rng.choice([6, 8, 18]),
                           liquidation_factor=rng.randint(0, F), store_front_price_factor=rng.randint(0, F))
        if sf.discounted_price == 0:
            continue
        c = rng.randint(1, 10**24)
        b = sf.max_base_for(c)
        assert sf.quote(b) <= c < sf.quote(b + 1)


def test_quote_rounds_like_comet():
    # WETH at $2,100, USDC at $1, liquidationFactor 0.95, storeFront 0.6: discount 3%.
    sf = cm.StoreFront(2_100 * 10**8, 10**8, F, 10**6, 95 * 10**16, 6 * 10**17)
    assert sf.discount_factor == 3 * 10**16
    assert sf.discounted_price == 2_037 * 10**8
    # 2,037 USDC buy exactly one WETH; one unit less falls short by the truncation.
    assert sf.quote(2_037 * 10**6) == F
    # floor(1e8 x (2037e6 - 1) x 1e18 / 2037e8 / 1e6) = 1e18 - ceil(1e18 / 2037e6)
    assert sf.quote(2_037 * 10**6 - 1) == F - 490_918_017
    assert sf.max_base_for(F) == 2_037 * 10**6 and sf.max_base_for(F - 1) == 2_037 * 10**6 - 1


def test_liquidity_truncates_toward_zero_like_solidity():
    # signedMulPrice(-1, 3, 2) = -3 / 2 = -1 in Solidity (not -2).
    assert cm.signed_mul_price(-1, 3, 2) == -1
    h = [cm.Holding(10 * F, 2_100 * 10**8, F, 895 * 10**15)]  # $18,795 at the liquidation factor
    assert cm.liquidity(18_795 * 10**6, 10**8, 10**6, h) == 0  # not below zero: not liquidatable
    assert cm.liquidity(18_795 * 10**6 + 1, 10**8, 10**6, h) == -100  # 1e-6 USDC = 100 x 1e-8 USD
    # A base price of 0.5e-8 USD per unit: -(3 x 1 // 2) = -1, truncated toward zero as Solidity does.
    assert cm.liquidity(3, 1, 2, []) == -1
    assert cm.min_amount(10_000, 50) == 9_950 and cm.min_amount(1, 50) == 0


# ---- config -----------------------------------------------------------------------------------

BASE = """
[chain]
rpc_url = "http://127.0.0.1:8545"
chain_id = 1
[signer]
private_key_env = "K"
[keeper]
min_profit_usd = 1
max_gas_price_gwei = 50
max_priority_fee_gwei = 2
native_usd_feed = "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419"
[[protocols]]
kind = "compound_v3"
comet = "0xc3d688B66703497DAA19211EEdff47f25384cdc3"
"""


def test_config_defaults(tmp_path):
    p = tmp_path / "k.toml"
    p.write_text(BASE)
    (c,) = load_config(p).protocols
    assert isinstance(c, CompoundV3Config)
    assert (c.name, c.start_block, c.absorb_without_profit, c.buy_slippage_bps, c.max_absorb_batch) == (
        "compound_v3", 0, False, 50, 10)


@pytest.mark.parametrize("extra, message", [
    ("buy_slippage_bps = 10001", r"protocols\[0\]\.buy_slippage_bps: .*less than or equal to 10000"),
    ("buy_slippage_bps = -1", r"protocols\[0\]\.buy_slippage_bps: .*greater than or equal to 0"),
    ("max_absorb_batch = 0", r"protocols\[0\]\.max_absorb_batch: .*greater than or equal to 1"),
    ("absorb_without_profits = true", r"protocols\[0\]\.absorb_without_profits: unknown key"),
    ("addresses_provider = \"0xc3d688B66703497DAA19211EEdff47f25384cdc3\"",
     r"protocols\[0\]\.addresses_provider: unknown key"),
])
def test_config_errors_name_the_key(tmp_path, extra, message):
    p = tmp_path / "k.toml"
    p.write_text(BASE + extra + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert re.search(message, str(e.value)), str(e.value)
    assert "compound_v3" not in str(e.value).split(": ")[1]  # the union tag is not in the location


def test_config_missing_comet(tmp_path):
    p = tmp_path / "k.toml"
    p.write_text(BASE.replace('comet = "0xc3d688B66703497DAA19211EEdff47f25384cdc3"\n', ""))
    with pytest.raises(ConfigError, match=r"protocols\[0\]\.comet: missing key"):
        load_config(p)


def test_example_compound_block_is_valid_when_uncommented(tmp_path):
    from tests.helpers.config import uncomment_examples
    p = tmp_path / "k.toml"
    p.write_text(uncomment_examples(EXAMPLE.read_text()))
    [c] = [c for c in load_config(p).protocols if c.kind == "compound_v3"]
    assert c.comet == "0xc3d688B66703497DAA19211EEdff47f25384cdc3"
    assert c.start_block == 15331586 and c.max_absorb_batch == 10 and c.buy_slippage_bps == 50


# ---- planning ---------------------------------------------------------------------------------

def market(**cfg) -> CompoundV3Adapter:
    """USDC base at $1; WETH at $2,100 (liquidationFactor 0.95: 3% discount) and WBTC at $60,000
    (liquidationFactor 0.9: 6% discount); storeFront 0.6; reserves 0 of a 5M target."""
    a = CompoundV3Adapter(CompoundV3Config(kind="compound_v3", comet=COMET, **cfg), Services(KEEPER))
    a.base, a.base_feed, a.base_scale, a.base_symbol, a.base_price = USDC, addr(1), 10**6, "USDC", 10**8
    a.store_front_price_factor = 6 * 10**17
    a.assets = {WETH: AssetState(0, WETH, addr(2), F, 895 * 10**15, 95 * 10**16, "WETH", 2_100 * 10**8),
                WBTC: AssetState(1, WBTC, addr(3), 10**8, 77 * 10**16, 9 * 10**17, "WBTC", 60_000 * 10**8)}
    a.reserves, a.target_reserves = 0, 5_000_000 * 10**6
    return a


def borrower(a: CompoundV3Adapter, n: int, debt: int, weth: float = 0, wbtc: float = 0, comet_liq=True) -> str:
    u = addr(0x1000 + n)
    coll = {k: v for k, v in ((WETH, int(weth * F)), (WBTC, int(wbtc * 10**8))) if v}
    a.accounts[u] = AccountState(debt * 10**6, coll, comet_liq, block=1)
    return u


def assess(a: CompoundV3Adapter, usdc: int = 10**12) -> Assessment:
    out = a.assess({USDC: usdc})
    out.check()
    return out


def test_batches_cover_each_account_once_biggest_first():
    a = market(max_absorb_batch=2)
    small = borrower(a, 0, 450, weth=0.2)
    big = [borrower(a, i, 20_000 + i, weth=10) for i in (1, 2)]
    mixed = borrower(a, 3, 28_500, weth=10, wbtc=0.2)
    healthy = borrower(a, 4, 12_000, weth=10, comet_liq=False)
    got = assess(a)
    p1, p2 = got.plans
    assert p1.accounts == (mixed, big[0]) and p2.accounts == (big[1], small)
    assert p1.kind == p2.kind == PlanKind.BATCH and (p1.account, p2.account) == (mixed, big[1])
    assert p1.label == "absorb 2 + buy WBTC+WETH"  # best discount (WBTC 6%) bought first
    views = {v.account: v for v in got.views}
    covered = {u: v.status.by for u, v in views.items() if isinstance(v.status, Covered)}
    assert covered == {big[0]: mixed, small: big[1]}
    assert views[mixed].status == Planned(p1) and views[big[1]].status == Planned(p2)
    assert views[small].label == p2.label and views[small].liquidatable
    assert {u: v.skip for u, v in views.items() if not v.liquidatable} == {
        healthy: Skip(SkipCode.NOT_LIQUIDATABLE, "healthy")}
    # The absorb call, then one buyCollateral per asset, paid in USDC from the keeper's wallet.
    assert p1.txs[0].to == COMET and p1.txs[0].data[:4] == keccak(text="absorb(address,address[])")[:4]
    assert all(t.data[:4] == keccak(text="buyCollateral(address,uint256,uint256,address)")[:4] for t in p1.txs[1:])
    assert [t.what.split()[1] for t in p1.txs[1:]] == ["WBTC", "WETH"]
    assert p1.spends[0].token == USDC and p1.spends[0].spender == COMET
    assert p1.spends[0].amount == -p1.expected[USDC]
    assert p1.gross_usd > 0 and not p1.force


def test_budget_limits_the_buys_and_replan_keeps_the_accounts():
    a = market()
    users = [borrower(a, i, 20_000, weth=10) for i in range(3)]
    (p,) = assess(a).plans
    full = -p.expected[USDC]
    assert p.expected[WETH] == a._store_front(a.assets[WETH]).quote(full) <= 30 * F
    q = a.replan(p, {USDC: 1_000 * 10**6})
    assert isinstance(q, Plan)
    assert q.accounts == p.accounts == tuple(sorted(users, key=a._freed_value, reverse=True))
    assert -q.expected[USDC] == 1_000 * 10**6 and q.spends[0].amount == 1_000 * 10**6
    empty = a.replan(p, {USDC: 0})
    assert isinstance(empty, Skip) and empty.code == SkipCode.NO_INVENTORY
    assert empty.message.startswith("wallet holds no USDC")


def test_reserves_at_target_skips_each_account_unless_the_switch():
    for switch in (False, True):
        a = market(absorb_without_profit=switch)
        a.reserves = a.target_reserves
        users = [borrower(a, i, 20_000, weth=10) for i in range(2)]
        got = assess(a)
        if not switch:
            assert got.plans == []
            assert [(v.account, v.skip) for v in got.views] == [
                (u, Skip(SkipCode.NOT_FOR_SALE, NOT_FOR_SALE)) for u in users]
            assert all(v.liquidatable for v in got.views)
        else:
            (p,) = got.plans
            assert p.force and p.label == "absorb 2" and len(p.txs) == 1 and not p.spends
            assert isinstance(p.details, AbsorbDetails)
            assert p.details.absorb_only == NOT_FOR_SALE and p.expected == {}


def test_no_buy_after_reserves_could_reach_the_target():
    a = market()
    a.reserves = a.target_reserves - 1_000 * 10**6  # the first buy (> 1,000 USDC) lifts them over
    borrower(a, 0, 28_500, weth=10, wbtc=0.2)
    (p,) = assess(a).plans
    assert p.label == "absorb 1 + buy WBTC" and len(p.txs) == 2 and p.kind == PlanKind.LIQUIDATION


def test_quote_mismatch_and_bad_debt():
    a = market()
    a.assets[WBTC].quote_ok = False
    u = borrower(a, 0, 28_500, weth=10, wbtc=0.2)
    bad = borrower(a, 1, 500)  # debt and no collateral left
    got = assess(a)
    views = {v.account: v for v in got.views}
    assert views[u].label == "absorb 1 + buy WETH"
    skip = views[bad].skip
    assert skip is not None and skip.code == SkipCode.NO_COLLATERAL and "bad debt" in skip.message
    a.assets[WETH].quote_ok = False  # nothing left that the keeper's maths can price
    (v,) = [v for v in assess(a).views if v.account == u]
    assert v.skip is not None and v.skip.code == SkipCode.MATHS_MISMATCH


def test_accrual_only_accounts_get_their_own_batch_with_the_note():
    a = market()
    seen = borrower(a, 0, 20_000, weth=10)
    hidden = borrower(a, 1, 18_800, weth=10, comet_liq=False)  # > $18,795: liquidatable once accrued
    got = assess(a)
    p1, p2 = got.plans
    assert p1.accounts == (seen,) and p2.accounts == (hidden,)
    views = {v.account: v for v in got.views}
    assert views[seen].status == Planned(p1, None) and views[hidden].status == Planned(p2, ACCRUAL_NOTE)
    assert isinstance(p2.details, AbsorbDetails) and p2.details.accrual_only == (hidden,)


def test_collateral_for_sale_makes_a_buy_only_plan():
    a = market()
    a.assets[WETH].reserves = 5 * F
    got = assess(a)
    (p,) = got.plans
    assert got.views == []  # a buy liquidates no account
    assert p.account == COMET and p.label == "buy WETH" and p.kind == PlanKind.BUY and p.accounts == ()
    assert p.expected[WETH] <= 5 * F and p.gross_usd > 0
    q = a.replan(p, {USDC: 100 * 10**6})
    assert isinstance(q, Plan) and q.spends[0].amount == 100 * 10**6
    a.reserves = a.target_reserves
    assert assess(a).plans == []
    assert a.replan(p, {USDC: 10**12}) == Skip(SkipCode.NOTHING_LEFT, "nothing left to buy")
