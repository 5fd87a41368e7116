"""The engine on typed plans, without a node: ranking, skip records deduplicated by code, the
executor's re-plan / skip / simulate / settle logic on a StubNode, and the daemon step and the scan
table fed by stub adapters. No protocol is named: the engine reads only the plan's typed fields."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from keeper.chain.fees import GWEI, Fees
from keeper.chain.sender import TxRequest
from keeper.chain.signer import Signer
from keeper.config import load_config
from keeper.config_types import ProtocolConfig
from keeper.engine.daemon import Keeper, scan_rows
from keeper.engine.execute import Executor, Limits
from keeper.engine.rank import gas_cost_usd, rank
from keeper.engine.record import Outcome, Recorder, Status
from keeper.protocols.base import (
    USD,
    AccountView,
    Adapter,
    Assessment,
    Covered,
    Details,
    Plan,
    PlanKind,
    Planned,
    Skip,
    SkipCode,
    Spend,
    TokenPrice,
)
from tests.engine.stub_node import APPROVE, KEY, StubNode, mine_and_settle, stub_manager


def addr(n: int) -> str:
    return to_checksum_address(f"0x{n:040x}")


USDC, WETH, DSU, POOL = addr(0x05D), addr(0xE7), addr(0xD5), addr(0x9001)
PRICES = {USDC: TokenPrice(USD, 6, "USDC"), WETH: TokenPrice(2_000 * USD, 18, "WETH"), DSU: TokenPrice(USD, 18)}
FEES = Fees(base_fee=GWEI, priority_fee=GWEI, max_fee=3 * GWEI)  # 2 gwei expected
NATIVE = 2_000 * USD
LIMITS = Limits(min_profit=USD, max_gas_price=50 * GWEI, gas_margin_pct=130, dry_run=False)
HEALTHY = Skip(SkipCode.NOT_LIQUIDATABLE, "healthy")


def usdc(x: float) -> int:
    return int(x * 10**6)


def weth(x: float) -> int:
    return int(x * 10**18)


def liq(account: str, spend: int, seize: int, *, accounts: tuple[str, ...] | None = None, debt: int = 0,
        **kw) -> Plan:
    """A plan that repays ``spend`` USDC from the wallet for ``seize`` WETH."""
    accounts = accounts or (account,)
    tx = TxRequest(POOL, b"liq" + bytes.fromhex(account[2:]) + spend.to_bytes(32, "big"), what=f"liquidate {account}")
    return Plan(protocol=kw.pop("protocol", "stub"), kind=PlanKind.BATCH if len(accounts) > 1 else PlanKind.LIQUIDATION,
                account=account, accounts=accounts, label="WETH/USDC", txs=(tx,), spends=(Spend(USDC, POOL, spend),),
                expected={USDC: -spend, WETH: seize}, prices=PRICES, gas_estimate=100_000, debt_usd=debt, **kw)


def view(account: str, status, *, liquidatable: bool = True, protocol: str = "stub") -> AccountView:
    return AccountView(protocol, account, "WETH/USDC", 0.9 if liquidatable else 1.5, 1_000 * USD, liquidatable, status)


class StubAdapter(Adapter[ProtocolConfig]):
    """Hands the engine a fixed Assessment; re-plans with ``replanner`` and records the budgets."""

    def __init__(self, name: str, assessment: Assessment, replanner=None):
        self.name = name
        self.cfg = ProtocolConfig(kind="stub", name=name)
        self.assessment = assessment
        self.replanner = replanner
        self.replans: list[tuple[str, dict[str, int]]] = []

    async def start(self, chain) -> None: ...
    def contracts(self) -> dict[str, str]: return {}
    async def discover(self, from_block: int, to_block: int) -> int: return 0
    async def refresh(self, block: int, *, all_details: bool = False) -> None: ...

    def assess(self, budget):
        return self.assessment

    def replan(self, plan, budget):
        self.replans.append((plan.account, dict(budget)))
        return self.replanner(plan, budget) if self.replanner else plan


async def execute(node: StubNode, plans: list[Plan], adapters: list[StubAdapter] = (), limits: Limits = LIMITS,
                  recorder: Recorder | None = None) -> list[Outcome]:
    """The executor's outcomes, each sent plan's replaced by its record once the block is mined."""
    recorder = recorder or Recorder()
    manager = await stub_manager(node, recorder)
    try:
        ex = Executor(node.chain, node.wallet, recorder, limits, manager=None if limits.dry_run else manager)
        budget = await ex.budget({USDC})
        out = await ex.run(rank(plans, FEES.expected_price, NATIVE), {a.name: a for a in adapters}, budget, FEES,
                           NATIVE, block=node.block)
        await mine_and_settle(node, manager)
    finally:
        await manager.store.close()
    final = {o.attempt: o for o in recorder.outcomes if o.attempt is not None}
    return [final.get(o.attempt, o) if o.attempt is not None else o for o in out]


# ---- plan -------------------------------------------------------------------------------------

def test_plan_refuses_inconsistent_shapes():
    a, b = addr(1), addr(2)
    with pytest.raises(ValueError, match="no transactions"):
        Plan("stub", PlanKind.CLAIM, a, (), "claim", ())
    with pytest.raises(ValueError, match="lead .* first"):
        liq(a, 1, 1, accounts=(b, a))
    with pytest.raises(ValueError, match="covers 2 accounts: a batch"):
        Plan("stub", PlanKind.LIQUIDATION, a, (a, b), "x", (TxRequest(POOL, b"x"),))
    with pytest.raises(ValueError, match="no price for"):
        Plan("stub", PlanKind.LIQUIDATION, a, (a,), "x", (TxRequest(POOL, b"x"),), expected={addr(77): 1})


def test_details_report_large_integers_as_strings():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class D(Details):
        small: int
        big: int
        pair: tuple[str, ...]
        code: SkipCode

    assert D(5, 10**18, ("a", "b"), SkipCode.FULL_ONLY).report() == {
        "small": 5, "big": str(10**18), "pair": ["a", "b"], "code": "full_only"}


def test_assessment_check_links_views_to_listed_plans():
    a, b = addr(1), addr(2)
    p = liq(a, usdc(100), weth(0.06), accounts=(a, b))
    Assessment([view(a, Planned(p)), view(b, Covered(p, "in a's batch"))], [p]).check()
    with pytest.raises(ValueError, match="Planned"):
        Assessment([view(a, Planned(p))], []).check()
    with pytest.raises(ValueError, match="Covered"):
        Assessment([view(addr(3), Covered(p, "?"))], [p]).check()


# ---- rank -------------------------------------------------------------------------------------

def test_rank_orders_by_profit_after_gas_then_debt_and_counts_native_value():
    gas = gas_cost_usd(100_000, FEES.expected_price, NATIVE)
    small = liq(addr(1), usdc(100), weth(0.06))  # gross 20 USD
    big = liq(addr(2), usdc(1_000), weth(0.6))  # gross 200 USD
    same_more_debt = liq(addr(3), usdc(100), weth(0.06), debt=10**12)
    fee = TxRequest(POOL, b"fee", value=weth(0.005))  # a pull-oracle fee: 10 USD of native value
    with_fee = Plan("stub", PlanKind.LIQUIDATION, addr(4), (addr(4),), "x", (fee,), expected={WETH: weth(0.01)},
                    prices=PRICES, gas_estimate=100_000)
    ranked = rank([small, big, same_more_debt, with_fee], FEES.expected_price, NATIVE)
    assert [r.plan for r in ranked] == [big, same_more_debt, small, with_fee]
    assert [r.position for r in ranked] == [0, 1, 2, 3]
    assert ranked[0].net_usd == 200 * USD - gas and ranked[0].gas_usd == gas
    assert ranked[3].net_usd == 20 * USD - gas - 10 * USD  # same gross as small, less the fee


# ---- record -----------------------------------------------------------------------------------

def test_recorder_dedupes_skips_by_code_and_label_not_by_message(tmp_path):
    rec = Recorder(tmp_path / "out.jsonl")
    a = addr(1)

    def skip(code: SkipCode, message: str, label: str = "WETH/USDC") -> Outcome:
        return rec.add(Outcome(Status.SKIPPED, "stub", a, label, message, code))

    skip(SkipCode.BELOW_MIN_PROFIT, "expected profit 0.50 USD below min_profit_usd 1.00")
    skip(SkipCode.BELOW_MIN_PROFIT, "profit after simulated gas 0.40 USD below min_profit_usd 1.00")  # same code
    skip(SkipCode.NO_INVENTORY, "below: a message starting like another code's")  # another code
    skip(SkipCode.NO_INVENTORY, "wallet holds 0", label="WBTC/USDC")  # another pair
    skip(SkipCode.NO_INVENTORY, "wallet holds 1", label="WBTC/USDC")
    assert [(o.reason_code, o.label) for o in rec.outcomes] == [
        (SkipCode.BELOW_MIN_PROFIT, "WETH/USDC"), (SkipCode.NO_INVENTORY, "WETH/USDC"),
        (SkipCode.NO_INVENTORY, "WBTC/USDC")]
    rec.add(Outcome(Status.CONFIRMED, "stub", a, "WBTC/USDC", kind=PlanKind.LIQUIDATION, accounts=(a,)))
    skip(SkipCode.NO_INVENTORY, "wallet holds 2", label="WBTC/USDC")  # recorded again after an action
    assert len(rec.outcomes) == 5
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [x["reason_code"] for x in lines] == ["below_min_profit", "no_inventory", "no_inventory", None,
                                                 "no_inventory"]
    assert lines[3]["kind"] == "liquidation" and lines[3]["accounts"] == [a]


def test_report_puts_claims_apart_by_kind():
    rec = Recorder()
    rec.add(Outcome(Status.CONFIRMED, "stub", addr(1), kind=PlanKind.BATCH, accounts=(addr(1), addr(2))))
    rec.add(Outcome(Status.CONFIRMED, "stub", addr(9), kind=PlanKind.CLAIM))
    report = rec.report()
    assert [o["kind"] for o in report["liquidations"]] == ["batch"]
    assert report["liquidations"][0]["accounts"] == [addr(1), addr(2)]
    assert [o["kind"] for o in report["claims"]] == ["claim"]


# ---- execute ----------------------------------------------------------------------------------

async def test_a_plan_that_lost_its_balance_is_planned_again_with_what_is_left():
    node = StubNode(balances={USDC: usdc(1_000)})
    a, b = addr(1), addr(2)
    first = liq(a, usdc(800), weth(0.6))  # gross 400 USD: ranked first
    second = liq(b, usdc(600), weth(0.4))  # gross 200 USD
    smaller = liq(b, usdc(200), weth(0.13))
    ad = StubAdapter("stub", Assessment(), replanner=lambda p, budget: smaller)
    out = await execute(node, [second, first], [ad])
    assert ad.replans == [(b, {USDC: usdc(200)})]  # what the first plan left
    assert [(o.status, o.account, o.rank) for o in out] == [(Status.CONFIRMED, a, 0), (Status.CONFIRMED, b, 1)]
    # One approval (the same token and spender), then both plans, the second as re-planned.
    assert [t.data[:4] == APPROVE for t in node.sent] == [True, False, False]
    assert [t.data for t in node.sent[1:]] == [first.txs[0].data, smaller.txs[0].data]
    # The second plan was simulated after the first one's unmined transactions (the approval in
    # flight among them: it is not sent again, nor simulated twice).
    assert [t.data for t in node.simulated[1]] == [node.sent[0].data, first.txs[0].data, smaller.txs[0].data]
    assert out[1].ranked_net == rank([second], FEES.expected_price, NATIVE)[0].net_usd  # as ranked, before re-planning


async def test_a_replan_with_nothing_left_is_skipped_with_its_code_accounts_and_rank():
    node = StubNode(balances={USDC: usdc(1_000)}, allowances={(USDC, POOL): 2**256 - 1})
    a, b, c = addr(1), addr(2), addr(3)
    first = liq(a, usdc(1_000), weth(0.6))
    batch = liq(b, usdc(600), weth(0.4), accounts=(b, c))
    nothing = Skip(SkipCode.NO_INVENTORY, "wallet holds no USDC")
    ad = StubAdapter("stub", Assessment(), replanner=lambda p, budget: nothing)
    out = await execute(node, [first, batch], [ad])
    assert [o.status for o in out] == [Status.CONFIRMED, Status.SKIPPED]
    s = out[1]
    assert (s.account, s.accounts, s.kind, s.rank, s.reason_code, s.reason) == (
        b, (b, c), PlanKind.BATCH, 1, SkipCode.NO_INVENTORY, "wallet holds no USDC")
    assert [t.data for t in node.sent] == [first.txs[0].data]  # nothing sent for the batch


async def test_simulation_revert_is_a_skip_with_the_decoded_reason_and_nothing_is_sent():
    p = liq(addr(1), usdc(100), weth(0.06))
    node = StubNode(balances={USDC: usdc(1_000)}, reverts={p.txs[0].data: "position is healthy"})
    rec = Recorder()
    (o,) = await execute(node, [p], recorder=rec)
    assert o.status is Status.SKIPPED and o.reason_code is SkipCode.SIMULATION_REVERT
    assert o.reason == f"simulation: liquidate {addr(1)} would revert: position is healthy"
    assert node.sent == [] and len(node.simulated) == 1
    await execute(node, [p], recorder=rec)  # the same again next block: recorded once
    assert len(rec.outcomes) == 1


async def test_gas_cap_min_profit_and_wallet_checks_skip_before_simulating():
    node = StubNode(balances={USDC: usdc(50)})
    cheap = liq(addr(1), usdc(10), weth(0.0052))  # gross 0.40 USD < min profit 1 USD
    (o,) = await execute(node, [cheap])
    assert o.reason_code is SkipCode.BELOW_MIN_PROFIT and o.predicted_profit < USD
    capped = Limits(min_profit=USD, max_gas_price=GWEI, gas_margin_pct=130, dry_run=False)
    (o,) = await execute(node, [liq(addr(2), usdc(10), weth(1))], limits=capped)
    assert o.reason_code is SkipCode.GAS_PRICE_CAP and "above max_gas_price_gwei 1.00" in o.reason
    (o,) = await execute(node, [liq(addr(3), usdc(100), weth(1))])
    assert o.reason_code is SkipCode.NO_INVENTORY and o.reason == "wallet holds 50.00 USDC, needs 100.00 USDC"
    assert node.simulated == [] and node.sent == []


async def test_a_forced_plan_goes_below_min_profit_and_realised_profit_comes_from_transfers():
    p = liq(addr(1), usdc(10), weth(0.0052), force=True)
    node = StubNode(balances={USDC: usdc(50)}, allowances={(USDC, POOL): usdc(10)},
                    transfers={p.txs[0].data: [(USDC, -usdc(10)), (WETH, weth(0.0051))]})
    (o,) = await execute(node, [p])
    assert o.status is Status.CONFIRMED and o.accounts == (addr(1),) and o.kind is PlanKind.LIQUIDATION
    gas_usd = gas_cost_usd(node.gas_used, FEES.expected_price, NATIVE)
    assert o.predicted_profit == p.gross_usd - gas_usd < USD
    paid = node.gas_used * GWEI * NATIVE // 10**18  # the receipts' effective gas price: 1 gwei
    assert o.realised_profit == PRICES[WETH].usd(weth(0.0051)) - 10 * USD - paid
    assert o.details["token_deltas"] == {USDC: str(-usdc(10)), WETH: str(weth(0.0051))}
    assert o.details["gas_simulated"] == node.gas_used and o.details["approvals"] == 0


async def test_a_claim_counts_what_it_collects_against_its_gas_multiple_and_books_only_the_difference():
    owed = 10**18  # 1 DSU booked as deferred by an earlier plan
    tx = TxRequest(POOL, b"claim", what="claimFee")

    def claim(multiple: str) -> Plan:
        return Plan("stub", PlanKind.CLAIM, addr(9), (), "claim", (tx,), collects={DSU: owed}, prices=PRICES,
                    gas_estimate=100_000, force=True, min_gas_multiple=Decimal(multiple))

    node = StubNode(transfers={tx.data: [(DSU, owed + 10**16)]})  # 0.01 DSU more than booked
    gas_usd = gas_cost_usd(node.gas_used, FEES.expected_price, NATIVE)  # 0.40 USD
    (o,) = await execute(node, [claim("3")])
    assert o.reason_code is SkipCode.BELOW_GAS_MULTIPLE and node.sent == []
    rec = Recorder()
    (o,) = await execute(node, [claim("2")], recorder=rec)  # 1 USD >= 2 x 0.40 USD
    assert o.status is Status.CONFIRMED and o.kind is PlanKind.CLAIM and o.accounts == ()
    assert o.predicted_profit == -gas_usd
    assert o.realised_profit == USD // 100 - node.gas_used * GWEI * NATIVE // 10**18
    assert o.details["collects"] == {DSU: str(owed)}
    assert [x["kind"] for x in rec.report()["claims"]] == ["claim"] and rec.report()["liquidations"] == []


async def test_reverted_on_chain_and_dry_run():
    p = liq(addr(1), usdc(100), weth(1))
    node = StubNode(balances={USDC: usdc(100)}, allowances={(USDC, POOL): usdc(100)}, fails_on_chain={p.txs[0].data})
    (o,) = await execute(node, [p])
    assert o.status is Status.REVERTED and o.reason == f"liquidate {addr(1)} reverted on chain"
    node = StubNode(balances={USDC: usdc(100)})
    dry = Limits(min_profit=USD, max_gas_price=50 * GWEI, gas_margin_pct=130, dry_run=True)
    (o,) = await execute(node, [p], limits=dry)
    assert o.status is Status.DRY_RUN and o.details["approvals"] == 1 and node.sent == []


# ---- the daemon step and scan, fed by stub adapters -------------------------------------------

CONFIG = """
[chain]
rpc_url = "http://127.0.0.1:9"
chain_id = 31337
[signer]
private_key_env = "UNUSED"
[keeper]
min_profit_usd = 1
max_gas_price_gwei = 50
max_priority_fee_gwei = 2
native_usd_feed = "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419"
[[protocols]]
kind = "aave_v3"
addresses_provider = "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"
"""


async def test_step_records_unplanned_liquidatable_accounts_and_ranks_every_adapters_plans(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text(CONFIG)
    keeper = Keeper(load_config(path), Signer(Account.from_key("0x" + "42" * 32)))
    try:
        a, b, c, d, e, f = (addr(i) for i in range(1, 7))
        batch = liq(a, usdc(300), weth(0.2), accounts=(a, b))  # gross 100 USD
        one = liq(e, usdc(100), weth(0.1), protocol="other")  # gross 100 USD, ranked by debt next
        lending = Assessment([view(a, Planned(batch)), view(b, Covered(batch, f"in one batch with {a}")),
                              view(c, Skip(SkipCode.FULL_ONLY, "needs full liquidation")),
                              view(d, HEALTHY, liquidatable=False)], [batch])
        other = Assessment([view(e, Planned(one), protocol="other"),
                            view(f, Skip(SkipCode.STALE_ORACLE, "oracle stale"), protocol="other")], [one])
        lending.check()
        other.check()
        keeper.adapters = [StubAdapter("stub", lending), StubAdapter("other", other)]
        keeper.by_name = {x.name: x for x in keeper.adapters}
        node = StubNode(balances={USDC: usdc(1_000)},
                        transfers={batch.txs[0].data: [(USDC, -usdc(300)), (WETH, weth(0.2))],
                                   one.txs[0].data: [(USDC, -usdc(100)), (WETH, weth(0.1))]})
        keeper.signer = Signer(Account.from_key(KEY))
        manager = await stub_manager(node, keeper.recorder)
        keeper.manager = manager
        keeper.executor = Executor(node.chain, node.wallet, keeper.recorder, keeper.limits, manager=manager)

        async def state(block, all_details=False):
            return FEES, NATIVE, await keeper.executor.budget({USDC})

        keeper._state = state
        node.block = 7
        out = await keeper.step(7)
        assert keeper.last_block == 7
        assert [o.status for o in out] == [Status.PENDING] * 2  # the step hands them over, waits for nothing
        # Every account with debt is counted as tracked, the healthy one (d) whose view the step leaves out too.
        assert keeper.telemetry.protocols["stub"].tracked == 4 and keeper.telemetry.protocols["other"].tracked == 2
        await mine_and_settle(node, manager)
        report = keeper.recorder.report()
        # Skipped: only the liquidatable accounts nothing covers, with their codes.
        assert [(s["account"], s["reason_code"], s["accounts"]) for s in report["skipped"]] == [
            (c, "full_only", [c]), (f, "stale_oracle", [f])]
        # Both adapters' plans in one ranking; the batch names every account it covers.
        assert [(o.protocol, o.rank) for o in out] == [("stub", 0), ("other", 1)]
        assert [(x["account"], x["accounts"], x["kind"]) for x in report["liquidations"]] == [
            (a, [a, b], "batch"), (e, [e], "liquidation")]
        assert all(x["realised_profit_usd"] > 0 for x in report["liquidations"])
        # The next block: the same skips are not recorded again.
        await keeper.step(8)
        assert len(keeper.recorder.report()["skipped"]) == 2
        await manager.store.close()
    finally:
        await keeper.close()


def test_scan_rows_show_plans_covers_and_skips():
    a, b, c, d = (addr(i) for i in range(1, 5))
    batch = liq(a, usdc(300), weth(0.2), accounts=(a, b))
    claim = Plan("stub", PlanKind.CLAIM, addr(9), (), "claim fees", (TxRequest(POOL, b"c"),), collects={DSU: 1},
                 prices=PRICES, gas_estimate=70_000)
    views = [view(a, Planned(batch, "a note for the operator")), view(b, Covered(batch, f"in one batch with {a}")),
             view(c, Skip(SkipCode.NO_INVENTORY, "wallet holds 0")),
             AccountView("stub", d, "WETH/USDC", 1.2, USD, False, HEALTHY, value_usd=5 * USD)]
    rows = {r.account: r for r in scan_rows([Assessment(views, [batch, claim])], FEES.expected_price, NATIVE)}
    gas = gas_cost_usd(100_000, FEES.expected_price, NATIVE)
    assert rows[a].expected_profit_usd == (batch.gross_usd - gas) / USD and rows[a].why == "a note for the operator"
    assert rows[b].why == f"in one batch with {a}" and rows[b].expected_profit_usd is None and rows[b].liquidatable
    assert (rows[c].why, rows[c].why_code) == ("wallet holds 0", "no_inventory")
    assert (rows[d].why, rows[d].why_code, rows[d].liquidatable) == ("healthy", "not_liquidatable", False)
    assert rows[d].expected_profit_usd == (5 * USD - gas_cost_usd(400_000, FEES.expected_price, NATIVE)) / USD
    assert rows[addr(9)].pair == "claim fees" and rows[addr(9)].expected_profit_usd is None
    order = list(rows)
    assert order.index(d) == len(order) - 1  # liquidatable first
