"""The engine's part in capital-free execution, without a node and without protocol knowledge: a
plan whose wallet changes come from a swap inside the transaction is valued by the simulation's
Transfer logs (the swap pays what the pool gives after the block's earlier trades), a plan the
wallet's balance shrank says the wallet lacks funds (token, held, needed) instead of a bare
"below min_profit_usd", and a flash plan spends nothing from the wallet."""
from __future__ import annotations

import pytest
from eth_utils import to_checksum_address

from keeper.chain.fees import GWEI, Fees
from keeper.chain.sender import TxRequest
from keeper.engine.execute import Executor, Limits
from keeper.engine.rank import gas_cost_usd, rank
from keeper.engine.record import Outcome, Recorder, Status
from keeper.protocols.base import USD, Plan, PlanKind, SkipCode, Spend, TokenPrice
from tests.engine.stub_node import StubNode, mine_and_settle, stub_manager


def addr(n: int) -> str:
    return to_checksum_address(f"0x{n:040x}")


USDC, WETH, POOL, EXECUTOR = addr(0x05D), addr(0xE7), addr(0x9001), addr(0xE1EC)
PRICES = {USDC: TokenPrice(USD, 6, "USDC"), WETH: TokenPrice(2_000 * USD, 18, "WETH")}
FEES = Fees(base_fee=GWEI, priority_fee=GWEI, max_fee=3 * GWEI)  # 2 gwei expected
NATIVE = 2_000 * USD
LIMITS = Limits(min_profit=USD, max_gas_price=50 * GWEI, gas_margin_pct=130, dry_run=False)


def usdc(x: float) -> int:
    return int(x * 10**6)


def weth(x: float) -> int:
    return int(x * 10**18)


def liq(account: str, spend: int, seize: int, **kw) -> Plan:
    """An inventory plan: the wallet repays ``spend`` USDC for ``seize`` WETH."""
    tx = TxRequest(POOL, b"liq" + bytes.fromhex(account[2:]), what=f"liquidate {account}")
    return Plan("stub", PlanKind.LIQUIDATION, account, (account,), "WETH/USDC", (tx,),
                spends=(Spend(USDC, POOL, spend),), expected={USDC: -spend, WETH: seize}, prices=PRICES,
                gas_estimate=100_000, **kw)


async def execute(node: StubNode, plans: list[Plan]) -> list[Outcome]:
    """The executor's outcomes, each sent plan's replaced by its record once the block is mined."""
    recorder = Recorder()
    manager = await stub_manager(node, recorder)
    try:
        ex = Executor(node.chain, node.wallet, recorder, LIMITS, manager=manager)  # type: ignore[arg-type]
        budget = await ex.budget({USDC})
        out = await ex.run(rank(plans, FEES.expected_price, NATIVE), {}, budget, FEES, NATIVE, block=node.block)
        await mine_and_settle(node, manager)
    finally:
        await manager.store.close()
    final = {o.attempt: o for o in recorder.outcomes if o.attempt is not None}
    return [final.get(o.attempt, o) if o.attempt is not None else o for o in out]


def flash(account: str, profit: int, *, from_simulation: bool = True) -> Plan:
    """A flash plan: one executor call, the wallet receives ``profit`` USDC and spends nothing."""
    tx = TxRequest(EXECUTOR, b"flash" + bytes.fromhex(account[2:]), what=f"liquidate {account} via the executor")
    return Plan("stub", PlanKind.LIQUIDATION, account, (account,), "WETH/USDC", (tx,), expected={USDC: profit},
                prices={USDC: PRICES[USDC]}, gas_estimate=500_000, expected_from_simulation=from_simulation)


async def test_a_swap_plan_is_valued_by_the_simulations_transfers():
    quoted, paid = usdc(300), usdc(250)  # an earlier trade of the block moved the pool: 50 USDC less
    p = flash(addr(1), quoted)
    node = StubNode(transfers={p.txs[0].data: [(USDC, paid)]})
    (o,) = await execute(node, [p])
    assert o.status is Status.CONFIRMED and node.sent[0].data == p.txs[0].data  # no approval: nothing spent
    gas_usd = gas_cost_usd(node.gas_used, FEES.expected_price, NATIVE)
    assert o.predicted_profit == 250 * USD - gas_usd  # the 250 USDC the simulation moved, not the quote
    assert o.realised_profit == 250 * USD - node.gas_used * GWEI * NATIVE // 10**18  # (mined at 1 gwei)
    assert o.details["gross_profit_usd"] == 250.0
    # Without the flag the quoted figure stays the prediction.
    q = flash(addr(2), quoted, from_simulation=False)
    node = StubNode(transfers={q.txs[0].data: [(USDC, paid)]})
    (o,) = await execute(node, [q])
    assert o.predicted_profit == 300 * USD - gas_usd


async def test_a_plan_shrunk_by_the_wallet_that_does_not_pay_says_the_wallet_lacks_funds():
    # 10 USDC buy collateral worth 10.40 USD: below min_profit_usd (1 USD) once gas is paid. The
    # whole liquidation would need 20,000 USDC.
    p = liq(addr(1), usdc(10), weth(0.0052), shortfall=Spend(USDC, POOL, usdc(20_000)))
    node = StubNode(balances={USDC: usdc(10)})
    (o,) = await execute(node, [p])
    assert o.reason_code is SkipCode.NO_INVENTORY
    assert o.reason.startswith("wallet holds 10.00 USDC, needs 20,000.00 USDC: the part it can pay is too small "
                               "(expected profit ")
    assert "below min_profit_usd 1.00" in o.reason and node.simulated == []
    # A plan the wallet did not shrink is just below the minimum.
    (o,) = await execute(StubNode(balances={USDC: usdc(10)}), [liq(addr(2), usdc(10), weth(0.0052))])
    assert o.reason_code is SkipCode.BELOW_MIN_PROFIT


def test_scan_rows_and_table_show_both_modes_and_the_route():
    from keeper.cli import _table
    from keeper.engine.daemon import scan_rows
    from keeper.protocols.base import AccountView, Assessment, Execution, Modes, Planned

    p = flash(addr(1), usdc(300))
    modes = Modes(Execution.FLASH, inventory_usd=None, inventory_gas=400_000, flash_usd=300 * USD, flash_gas=500_000,
                  route="WETH -0.30%-> USDC", quoted="9.9524 WETH -> 20,785.53 USDC")
    view = AccountView("stub", addr(1), "WETH/USDC", 0.87, 20_000 * USD, True, Planned(p), modes=modes)
    (row,) = scan_rows([Assessment([view], [p])], FEES.expected_price, NATIVE)
    gas = gas_cost_usd(500_000, FEES.expected_price, NATIVE) / USD
    assert (row.execution, row.route, row.quoted) == ("flash", "WETH -0.30%-> USDC", "9.9524 WETH -> 20,785.53 USDC")
    assert row.inventory_profit_usd is None and row.flash_profit_usd == pytest.approx(300 - gas)
    table = _table([row])
    assert "flash_usd" in table.splitlines()[0] and "WETH -0.30%-> USDC" in table and f"{300 - gas:,.2f}" in table
