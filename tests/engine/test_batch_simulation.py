"""Every plan of a block simulated in one eth_simulateV1 request (Simulator.run_many), on a StubNode:
one request for N plans, in rank order after what of ours is unmined; each plan's own gas and
verdict; a plan refused in the middle neither sent nor counted in the state the plans after it
meet; a plan that changed afterwards (re-planned, a next plan) simulated on its own."""
from __future__ import annotations

from eth_utils import to_checksum_address

from keeper.chain.fees import GWEI, Fees
from keeper.chain.sender import TxRequest
from keeper.engine.execute import Executor, Limits
from keeper.engine.rank import rank
from keeper.engine.record import Outcome, Recorder, Status
from keeper.engine.simulate import Simulator
from keeper.protocols.base import USD, Plan, PlanKind, SkipCode, Spend, TokenPrice
from tests.engine.stub_node import APPROVE, StubNode, mine_and_settle, stub_manager


def addr(n: int) -> str:
    return to_checksum_address(f"0x{n:040x}")


USDC, WETH, POOL = addr(0x05D), addr(0xE7), addr(0x9001)
PRICES = {USDC: TokenPrice(USD, 6, "USDC"), WETH: TokenPrice(2_000 * USD, 18, "WETH")}
FEES = Fees(base_fee=GWEI, priority_fee=GWEI, max_fee=3 * GWEI)
NATIVE = 2_000 * USD
LIMITS = Limits(min_profit=USD, max_gas_price=50 * GWEI, gas_margin_pct=130, dry_run=False)
MAX = 2**256 - 1


def tx(account: str, step: str = "liquidate") -> TxRequest:
    return TxRequest(POOL, step.encode() + bytes.fromhex(account[2:]), what=f"{step} {account}")


def liq(n: int, gross_weth: float, *, txs: tuple[TxRequest, ...] | None = None, spend: int = 10**6) -> Plan:
    """Plan ``n`` repays 1 USDC for ``gross_weth`` WETH (more WETH: ranked higher)."""
    a = addr(n)
    return Plan("stub", PlanKind.LIQUIDATION, a, (a,), "WETH/USDC", txs or (tx(a),), spends=(Spend(USDC, POOL, spend),),
                expected={USDC: -spend, WETH: int(gross_weth * 10**18)}, prices=PRICES, gas_estimate=100_000)


class Same:
    """An adapter that re-plans a plan into itself and offers ``nexts`` after a refusal."""
    name = "stub"

    def __init__(self, nexts: dict[str, list[Plan]] | None = None):
        self.nexts = nexts or {}

    def replan(self, plan: Plan, budget: dict[str, int]) -> Plan:
        return plan

    def alternatives(self, plan: Plan, refusal: str, budget: dict[str, int]) -> list[Plan]:
        return self.nexts.pop(plan.account, [])


async def execute(node: StubNode, plans: list[Plan], adapter: Same | None = None) -> list[Outcome]:
    recorder = Recorder()
    manager = await stub_manager(node, recorder)
    try:
        ex = Executor(node.chain, node.wallet, recorder, LIMITS, manager=manager)
        budget = await ex.budget({USDC})
        out = await ex.run(rank(plans, FEES.expected_price, NATIVE), {"stub": adapter or Same()},  # type: ignore[dict-item]
                           budget, FEES, NATIVE, block=node.block)
        await mine_and_settle(node, manager)
    finally:
        await manager.store.close()
    return out


def data(txs: list[TxRequest]) -> list[bytes]:
    return [t.data for t in txs]


async def test_n_plans_are_simulated_in_one_request_each_with_its_own_gas():
    plans = [liq(n, 1.0 - n / 10) for n in range(1, 6)]  # plan 1 ranks first
    node = StubNode(balances={USDC: 10**9}, allowances={(USDC, POOL): MAX},
                    gas={p.txs[0].data: 100_000 + 1_000 * i for i, p in enumerate(plans)})
    out = await execute(node, list(reversed(plans)))
    assert len(node.simulated) == 1  # ONE eth_simulateV1 for the five plans
    assert data(node.simulated[0]) == [p.txs[0].data for p in plans]  # in rank order
    assert [o.status for o in out] == [Status.PENDING] * 5
    assert [o.account for o in out] == [p.account for p in plans]
    assert [o.details["gas_simulated"] for o in out] == [100_000 + 1_000 * i for i in range(5)]
    assert data(node.sent) == [p.txs[0].data for p in plans]
    # the gas limit signed is each plan's own simulated gas with the margin
    assert [t.gas for t in node.sent] == [LIMITS.gas_limit(100_000 + 1_000 * i) for i in range(5)]


async def test_a_refusal_in_the_middle_is_skipped_and_the_others_go_as_simulated():
    a, b, c = liq(1, 0.9), liq(2, 0.8), liq(3, 0.7)
    node = StubNode(balances={USDC: 10**9}, allowances={(USDC, POOL): MAX}, reverts={b.txs[0].data: "healthy"},
                    gas={a.txs[0].data: 111_000, c.txs[0].data: 133_000})
    out = await execute(node, [c, b, a])
    assert len(node.simulated) == 1
    assert [(o.account, o.status) for o in out] == [(a.account, Status.PENDING), (b.account, Status.SKIPPED),
                                                   (c.account, Status.PENDING)]
    assert out[1].reason_code is SkipCode.SIMULATION_REVERT and "would revert: healthy" in (out[1].reason or "")
    assert [o.details["gas_simulated"] for o in (out[0], out[2])] == [111_000, 133_000]
    assert data(node.sent) == [a.txs[0].data, c.txs[0].data]


async def test_a_refused_plan_that_left_state_is_taken_out_and_the_rest_simulated_again():
    a = liq(1, 0.9)
    b = liq(2, 0.8, txs=(tx(addr(2), "commit"), tx(addr(2), "close")))  # commit succeeds, close reverts
    c = liq(3, 0.7)
    node = StubNode(balances={USDC: 10**9}, allowances={(USDC, POOL): MAX}, reverts={b.txs[1].data: "too late"})
    out = await execute(node, [a, b, c])
    assert [o.status for o in out] == [Status.PENDING, Status.SKIPPED, Status.PENDING]
    # the second request runs the plan after b on the state without b's commit: a's, then c's
    assert len(node.simulated) == 2
    assert data(node.simulated[1]) == [a.txs[0].data, c.txs[0].data]
    assert data(node.sent) == [a.txs[0].data, c.txs[0].data]


async def test_an_approval_two_plans_need_is_simulated_for_each_and_sent_once():
    a, b = liq(1, 0.9), liq(2, 0.8)
    node = StubNode(balances={USDC: 10**9})  # no allowance yet
    out = await execute(node, [a, b])
    assert len(node.simulated) == 1
    assert [t.data[:4] == APPROVE for t in node.simulated[0]] == [True, False, True, False]
    assert [o.status for o in out] == [Status.PENDING, Status.PENDING]
    assert [t.data[:4] == APPROVE for t in node.sent] == [True, False, False]  # b's went out with a
    assert [o.details["approvals"] for o in out] == [1, 0]


async def test_a_next_plan_after_a_refusal_is_simulated_on_its_own_and_the_rest_again_together():
    a, b, c, d = liq(1, 0.9), liq(2, 0.8), liq(3, 0.7), liq(4, 0.6)
    b2 = liq(2, 0.5, txs=(tx(addr(2), "smaller"),))
    node = StubNode(balances={USDC: 10**9}, allowances={(USDC, POOL): MAX}, reverts={b.txs[0].data: "dust"})
    out = await execute(node, [a, b, c, d], Same({b.account: [b2]}))
    assert [(o.account, o.status) for o in out] == [(a.account, Status.PENDING), (b.account, Status.PENDING),
                                                   (c.account, Status.PENDING), (d.account, Status.PENDING)]
    assert data(node.sent) == [a.txs[0].data, b2.txs[0].data, c.txs[0].data, d.txs[0].data]
    # the batch; b's next plan alone after a (unmined); c and d again, together, after a and b2
    assert [data(s) for s in node.simulated] == [
        [a.txs[0].data, b.txs[0].data, c.txs[0].data, d.txs[0].data],
        [a.txs[0].data, b2.txs[0].data],
        [a.txs[0].data, b2.txs[0].data, c.txs[0].data, d.txs[0].data]]


async def test_run_many_without_simulate_v1_says_so_and_one_plan_alone_is_simulated_as_before():
    node = StubNode()
    node.chain.capabilities.simulate_v1 = False
    assert await Simulator(node.chain).run_many(node.wallet, [[tx(addr(1))], [tx(addr(2))]]) is None  # type: ignore[arg-type]
    assert node.simulated == []
    p = liq(1, 0.9)
    node = StubNode(balances={USDC: 10**9}, allowances={(USDC, POOL): MAX})
    (o,) = await execute(node, [p])
    assert o.status is Status.PENDING and data(node.simulated[0]) == [p.txs[0].data]
