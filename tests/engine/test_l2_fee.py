"""The L1 fee of a rollup plan (chain.l2) in the engine: ranking, the executor's profit check
(node-free here; on Anvil with the real OP-stack predeploys in test_l2_fee_e2e), realised fees."""
from __future__ import annotations

from eth_abi import decode
from eth_utils import to_checksum_address

from keeper.chain.fees import GWEI, Fees
from keeper.chain.l1fee import GAS_PRICE_ORACLE, UnsignedTx
from keeper.chain.sender import TxRequest
from keeper.engine.execute import Executor, Limits
from keeper.engine.rank import gas_cost_usd, rank
from keeper.engine.record import Recorder
from keeper.protocols.base import USD, Plan, PlanKind, TokenPrice
from keeper.send.manager import _receipt

FEES = Fees(base_fee=GWEI, priority_fee=GWEI, max_fee=3 * GWEI)
NATIVE = 2_000 * USD
E18 = 10**18


def addr(n: int) -> str:
    return to_checksum_address(f"0x{n:040x}")


WETH, POOL = addr(0xE7), addr(0x9001)
PRICES = {WETH: TokenPrice(2_000 * USD, 18, "WETH")}


def plan(n: int, gross_weth: int, *, txs: int = 1) -> Plan:
    """A plan worth ``gross_weth`` (wei of WETH at 2000 USD) with ``txs`` transactions."""
    calls = tuple(TxRequest(POOL, bytes([n, i]) * 40) for i in range(txs))
    return Plan("stub", PlanKind.LIQUIDATION, addr(n), (addr(n),), f"plan {n}", calls,
                expected={WETH: gross_weth}, prices=PRICES, gas_estimate=300_000)


def test_rank_counts_each_plans_l1_fee_like_gas():
    big, small, mid = plan(1, E18 // 10), plan(2, E18 // 100), plan(3, E18 // 20)  # 200, 20, 100 USD
    gas = gas_cost_usd(300_000, FEES.expected_price, NATIVE)
    assert [r.plan for r in rank([big, small, mid], FEES.expected_price, NATIVE)] == [big, mid, small]
    # On an L2 the big plan's transactions publish costly L1 data: 0.095 ETH (190 USD) leaves it 10 USD.
    ranked = rank([big, small, mid], FEES.expected_price, NATIVE, [95 * E18 // 1000, 0, E18 // 1000])
    assert [r.plan for r in ranked] == [mid, small, big]
    assert ranked[0].net_usd == 100 * USD - 2 * USD - gas and ranked[0].gas_usd == gas + 2 * USD
    assert ranked[2].net_usd == 10 * USD - gas
    # No L1 fees given: none counted; the wrong number of them is an error naming both counts.
    assert rank([big], FEES.expected_price, NATIVE, [])[0].net_usd == 200 * USD - gas
    try:
        rank([big, small], FEES.expected_price, NATIVE, [1])
    except ValueError as e:
        assert "1 L1 fees for 2 plans" in str(e)
    else:
        raise AssertionError("expected a ValueError")


class BatchNode:
    """Answers GasPriceOracle.getL1Fee(bytes) batches with 1000 wei per byte of the transaction."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, list]]] = []

    async def batch(self, calls, **_):
        calls = list(calls)
        self.batches.append(calls)
        out = []
        for method, (tx, tag) in calls:
            assert method == "eth_call" and tx["to"] == GAS_PRICE_ORACLE and tag == "latest"
            (body,) = decode(["bytes"], bytes.fromhex(tx["data"][10:]))
            out.append("0x" + (1000 * len(body)).to_bytes(32, "big").hex())
        return out

    async def eth_call(self, *a, **k):
        raise AssertionError("one batch expected, not a call per transaction")


async def test_rank_estimates_are_one_batch_over_every_plans_transactions():
    node = BatchNode()
    limits = Limits(min_profit=USD, max_gas_price=50 * GWEI, gas_margin_pct=130, dry_run=True, l2="op_stack",
                    chain_id=8453)
    ex = Executor(node, addr(0x4EE), Recorder(), limits)  # type: ignore[arg-type]
    plans = [plan(1, E18, txs=2), plan(2, E18), plan(3, E18, txs=3)]
    fees = await ex.l1_estimates(plans, FEES)
    assert len(node.batches) == 1 and len(node.batches[0]) == 6

    def size(tx: TxRequest) -> int:
        return len(UnsignedTx(8453, tx.to, tx.data, 0, 0, 300_000 * 130 // 100 + 30_000, FEES.max_fee,
                              FEES.priority_fee).rlp())
    assert fees == [1000 * sum(size(t) for t in p.txs) for p in plans]
    # Not a rollup: no request at all.
    ex.limits = Limits(min_profit=USD, max_gas_price=50 * GWEI, gas_margin_pct=130, dry_run=True)
    assert await ex.l1_estimates(plans, FEES) == [0, 0, 0] and len(node.batches) == 1


def test_op_stack_receipt_l1_fee_is_part_of_the_fee_paid():
    raw = {"status": "0x1", "blockNumber": "0x10", "gasUsed": hex(200_000), "effectiveGasPrice": hex(10**6),
           "logs": [], "l1Fee": hex(3 * 10**12), "l1GasUsed": "0x640"}
    rc = _receipt("0xab", raw)
    assert rc.l1_fee == 3 * 10**12 and rc.fee_paid == 200_000 * 10**6 + 3 * 10**12
    del raw["l1Fee"]  # an L1 (or Anvil) receipt: no L1 fee
    rc = _receipt("0xab", raw)
    assert rc.l1_fee == 0 and rc.fee_paid == 200_000 * 10**6
