"""The Gearbox V3 mirror's local calcDebtAndCollateral on a hand-computed account, and its rows
surviving a restart (node-free; the anvil tests compare it with the real credit manager)."""
from __future__ import annotations

from keeper.protocols.gearbox_v3 import maths as gm
from keeper.protocols.gearbox_v3.mirror import GearboxMirror, Record, Terms, health

USDC, WETH, WBTC = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20
CM = "0x" + "44" * 20
RAY = 10**27


def terms(**kw) -> Terms:
    base = dict(tokens=[USDC, WETH, WBTC], prices={USDC: gm.Price(10**8, 10**6), WETH: gm.Price(3_000 * 10**8, 10**18),
                                                    WBTC: gm.Price(60_000 * 10**8, 10**8)},
                lts={USDC: 9_450, WETH: 8_500, WBTC: 8_000}, fee_interest=1_000, base_index=11 * RAY // 10,
                quota_index={WETH: 105 * RAY // 100, WBTC: RAY})
    return Terms(**(base | kw))  # type: ignore[arg-type]


def record(mask: int = 0b011) -> Record:
    # 1,000 USDC borrowed at index 1.0; 5 USDC of quota interest already accounted (stored + 1);
    # 2 USDC of quota fees; 100 USDC and 1 WETH held, WETH quota 2,000 USDC since index 1.0; 1 WBTC
    # held but not enabled (not counted).
    return Record(CM, 1_000 * 10**6, RAY, 1 + 5 * 10**6, 2 * 10**6, mask,
                  {USDC: 100 * 10**6, WETH: 10**18, WBTC: 10**8}, {WETH: (2_000 * 10**6, RAY), WBTC: (0, RAY)})


def test_health_follows_the_credit_managers_formulas():
    h = health(record(), terms())
    assert h is not None
    # quota interest 2,000 x 5% = 100 (+5 accounted); base interest 1,000 x 10% = 100; fees 2 + 10% of both
    assert h.debt == gm.Debt(1_000 * 10**6, 11 * RAY // 10, RAY, 105 * 10**6, 205 * 10**6, 22_500_000)
    assert h.total_debt_usd == 1_227_50_000_000
    # WETH: 3,000 x 85% = 2,550 capped by the 2,000 quota; USDC 100 x 94.5%; WBTC disabled
    assert (h.total_value_usd, h.twv_usd, h.total_value) == (3_100 * 10**8, 2_094_50_000_000, 3_100 * 10**6)
    assert not h.liquidatable
    assert health(record(), terms(prices=terms().prices | {WETH: gm.Price(1_000 * 10**8, 10**18)})).liquidatable


def test_an_account_the_maths_cannot_follow_has_no_local_health():
    assert health(record(mask=0b111), terms(quota_index={WETH: RAY})) is None  # WBTC's index unreadable
    assert health(record(mask=0b1011), terms()) is None  # a token beyond the known ones
    assert health(record(), terms(chain_read=frozenset({WETH}))) is None
    assert health(record(), terms(chain_read=frozenset({WBTC}))) is not None  # not enabled


def test_rows_restore_the_records():
    m = GearboxMirror()
    ca = "0x" + "55" * 20
    m.records[ca] = record()
    m.changed.add(ca)
    m.block = 42
    rows = {r.key: r for r in m.rows()}
    assert m.rows() == []  # only what changed since the last call
    again = GearboxMirror()
    again.restore(rows, 42)
    assert again.records == m.records and again.block == 42
    assert again.sync({ca: CM}) == set() and again.sync({}) == set() and not again.records
