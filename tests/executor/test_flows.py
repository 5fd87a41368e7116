"""Every LiquidationExecutor flow against the protocols' real contracts on Anvil, owned by a wallet
that holds no token: the liquidation is paid by flash liquidity (or Morpho's callback), the seized
collateral is swapped back on the real Uniswap V3, and the owner ends with the profit.

Each flow's profit is checked three ways: the entry point's return value by eth_call (the preview),
the owner's balance change, and the protocol's and the pool's own events (swap output minus what
was repaid and the flash fee). The swap output is also checked against QuoterV2 at the block
before, so price impact is what the quoter predicts."""
from __future__ import annotations

import pytest
from eth_abi import decode
from eth_utils import keccak
from keeper_devnet.protocols.gearbox_v3.world import account_state, price_updates
from keeper_devnet.protocols.morpho_blue.world import position
from keeper_devnet.tokens import Token
from keeper_devnet.uniswap import create_pool_at_price, pool_artifact, quoter_artifact

from keeper.abi import Abi
from keeper.executor import FlashSource, Profit, Swap, encode_path

from tests.executor.helpers import (
    FEE,
    ExecWorld,
    aave_call,
    assert_executor_clean,
    balance,
    build_exec_world,
    comet_call,
    events,
    executor_error,
    gearbox_full_call,
    gearbox_partial_call,
    morpho_call,
    preview,
    quote_exact_input,
    revert_of,
    send,
)

pytestmark = pytest.mark.anvil

LIQUIDATION_EVENT = "Liquidation(address,uint256)"
GAS: dict[str, int] = {}


@pytest.fixture(scope="module")
async def exec_world(deployer):
    ew = await build_exec_world(deployer)
    try:
        yield ew
    finally:
        await ew.chain.rpc.close()


@pytest.fixture
async def ew(exec_world, snapshot):
    yield exec_world


async def swap_out(ew: ExecWorld, receipt, token: Token) -> int:
    """What the world's Uniswap pools paid out of ``token`` in the transaction (their Swap events:
    amounts from the pool's side, negative when paid out)."""
    topic = Abi(pool_artifact().abi).event("Swap").topic
    pools = {p.address.lower(): p for p in ew.pools.values()}
    out = 0
    for lg in receipt.logs:
        p = pools.get(lg.address.lower())
        if p is None or not lg.topics or lg.topics[0] != topic:
            continue
        a0, a1 = decode(["int256", "int256"], lg.data[:64])
        out += -a0 if p.token0.address == token.address and a0 < 0 else 0
        out += -a1 if p.token1.address == token.address and a1 < 0 else 0
    return out


async def quote_before(ew: ExecWorld, receipt, path: bytes, amount_in: int) -> int:
    """QuoterV2.quoteExactInput at the block before ``receipt``'s (eth_call)."""
    fn = Abi(quoter_artifact().abi).fn("quoteExactInput")
    raw = await ew.chain.eth_call(ew.uni.quoter, fn.encode(path, amount_in), block=receipt.block_number - 1)
    return int(fn.decode(raw)[0])


async def run_flow(ew: ExecWorld, name: str, build, token: Token) -> tuple[int, object]:
    """Preview the flow with min 0, check a minimum above the preview reverts with the profit
    check, then send it with a minimum 0.1% under the preview (interest accrues between blocks);
    returns (profit, receipt) after checking the owner's balance change is the profit."""
    predicted = await preview(ew, build(Profit(token.address, 0)))
    assert predicted > 0
    name_, (got, need) = await executor_error(ew, build(Profit(token.address, predicted * 2)))
    assert name_ == "InsufficientProfit" and need == predicted * 2 and 0 < got < need
    minimum = predicted - predicted // 1000
    before = await balance(ew, token.address, ew.owner.address)
    assert before == 0  # the owner holds none of the profit (debt/base) token
    receipt = await send(ew, build(Profit(token.address, minimum)))
    assert receipt.status == 1
    [(profit,)] = events(receipt, ew.executor, LIQUIDATION_EVENT, ["uint256"])
    assert profit >= minimum and abs(profit - predicted) <= predicted // 1000
    assert await balance(ew, token.address, ew.owner.address) - before == profit
    await assert_executor_clean(ew, receipt)
    GAS[name] = receipt.gas_used
    print(f"\n{name}: profit {profit / 10**token.decimals:,.2f} {token.symbol}, gas {receipt.gas_used:,}")
    return profit, receipt


# ------------------------------------------------------------------------------------------ Aave V3

AAVE_PREMIUM_BPS = 5  # the world's Aave FLASHLOAN_PREMIUM_TOTAL


@pytest.mark.parametrize("source", list(FlashSource))
async def test_aave_v3_flow(ew, source):
    """Aave V3 liquidationCall paid with flash USDC from each source; the seized WETH sold for USDC."""
    usdc = ew.token("USDC")
    debt = usdc.units(10_000)  # aave_borrowers[0]: 10 WETH, 20,000 USDC, HF 0.866 (close factor 100%)
    swap = ew.swap_all("WETH", "USDC")
    profit, receipt = await run_flow(ew, f"aave_v3 ({source.name.lower()} flash)",
                                     aave_call(ew, swap, source, debt=debt), usdc)
    (_, seized, liquidator, _), = events(receipt, ew.world.aave.pool,
                                         "LiquidationCall(address,address,address,uint256,uint256,address,bool)",
                                         ["uint256", "uint256", "address", "bool"])
    assert liquidator.lower() == ew.executor.lower()
    out = await swap_out(ew, receipt, usdc)
    assert out == await quote_before(ew, receipt, swap.path, seized)
    fee = {FlashSource.MORPHO_BLUE: 0, FlashSource.AAVE_V3: debt * AAVE_PREMIUM_BPS // 10_000,
           FlashSource.UNISWAP_V3: -(-debt * 3000 // 1_000_000)}[source]
    assert profit == out - debt - fee


# ------------------------------------------------------------------------------------------ Morpho Blue

async def test_morpho_blue_flow(ew):
    """Morpho.liquidate with callback data: the seized WETH is sold inside onMorphoLiquidate, before
    Morpho pulls the USDC; no flash loan."""
    usdc, weth = ew.token("USDC"), ew.token("WETH")
    dep = ew.world.extra["morpho"]
    m = dep.markets["WETH/USDC"]
    borrower = ew.world.extra["morpho_borrowers"][0]
    shares_before = (await position(ew.d, dep, m, borrower)).borrow_shares
    swap = ew.swap_all("WETH", "USDC")
    build = morpho_call(ew, swap, seized=weth.units(5))
    profit, receipt = await run_flow(ew, "morpho_blue (callback, no flash)", build, usdc)
    [(repaid, repaid_shares, seized, _, _)] = events(
        receipt, dep.morpho, "Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)",
        ["uint256"] * 5)
    assert seized == weth.units(5)
    assert (await position(ew.d, dep, m, borrower)).borrow_shares == shares_before - repaid_shares
    out = await swap_out(ew, receipt, usdc)
    assert out == await quote_before(ew, receipt, swap.path, seized)
    assert profit == out - repaid


# ------------------------------------------------------------------------------------------ Compound III

async def test_compound_v3_flow(ew):
    """Comet absorb + buyCollateral paid with flash USDC (Morpho), the WETH bought sold for USDC."""
    usdc = ew.token("USDC")
    comet = ew.world.extra["comet"].comet
    base_amount = usdc.units(10_000)
    swap = ew.swap_all("WETH", "USDC")
    profit, receipt = await run_flow(ew, "compound_v3 (morpho flash)", comet_call(ew, swap, base_amount=base_amount),
                                     usdc)
    absorbed = [lg for lg in receipt.logs if lg.address == comet and lg.topics[0] == "0x" + keccak(
        text="AbsorbDebt(address,address,uint256,uint256)").hex()]
    assert len(absorbed) == 1 and absorbed[0].topics[1][-40:] == ew.executor[2:].lower()  # absorber
    [(paid, bought)] = events(receipt, comet, "BuyCollateral(address,address,uint256,uint256)", ["uint256", "uint256"])
    assert paid == base_amount
    out = await swap_out(ew, receipt, usdc)
    assert out == await quote_before(ew, receipt, swap.path, bought)
    assert profit == out - base_amount


# ------------------------------------------------------------------------------------------ Gearbox V3

async def test_gearbox_partial_flow(ew):
    """partiallyLiquidateCreditAccount paid with flash USDC (Aave, premium counted), with the Pyth
    update for WETH passed through; the seized WETH sold for USDC."""
    usdc = ew.token("USDC")
    dep = ew.world.extra["gearbox"]
    repaid = usdc.units(5_000)
    swap = ew.swap_all("WETH", "USDC")
    build = await gearbox_partial_call(ew, swap, FlashSource.AAVE_V3, repaid=repaid)
    profit, receipt = await run_flow(ew, "gearbox_v3 partial (aave flash)", build, usdc)
    [(repaid_debt, seized, fee)] = events(
        receipt, dep.credit_facade, "PartiallyLiquidateCreditAccount(address,address,address,uint256,uint256,uint256)",
        ["uint256"] * 3)
    assert repaid_debt + fee == repaid
    out = await swap_out(ew, receipt, usdc)
    assert out == await quote_before(ew, receipt, swap.path, seized)
    assert profit == out - repaid - repaid * AAVE_PREMIUM_BPS // 10_000
    assert (await account_state(ew.d, dep, ew.world.extra["gearbox_accounts"][0])).liquidatable is False


@pytest.mark.parametrize("index, what", [(5, "bad debt"), (1, "two collaterals"), (3, "small, minDebt-capped")])
async def test_gearbox_full_flow(ew, index, what):
    """liquidateCreditAccount (loss policy data empty) with addCollateral of flash USDC (Morpho) and
    every collateral withdrawn to the executor, then each swapped to USDC. The liquidator's take is
    everything it withdrew and got back, less 96% of the account's total value."""
    usdc = ew.token("USDC")
    dep = ew.world.extra["gearbox"]
    ca = ew.world.extra["gearbox_accounts"][index]
    before = await account_state(ew.d, dep, ca, await price_updates(ew.d, dep))
    assert before.liquidatable and (before.total_value * 96 // 100 < before.total_debt) == (what == "bad debt")
    build, value, held = await gearbox_full_call(ew, index, FlashSource.MORPHO_BLUE)
    assert len(held) == (2 if what == "two collaterals" else 1)
    profit, receipt = await run_flow(ew, f"gearbox_v3 full, {what} (morpho flash)", build, usdc)
    [(to, remaining)] = events(receipt, dep.credit_facade, "LiquidateCreditAccount(address,address,address,uint256)",
                               ["address", "uint256"])
    assert to.lower() == ew.executor.lower()
    assert (remaining == 0) == (what == "bad debt")
    out = await swap_out(ew, receipt, usdc)
    assert profit == out - value * 9_600 // 10_000  # the liquidation discount (LIQUIDATION_PREMIUM 4%)
    after = await account_state(ew.d, dep, ca)
    assert after.debt == 0 and not after.liquidatable


# ------------------------------------------------------------------------------------------ paths and profit tokens

async def test_two_hop_path(ew):
    """The swap follows an encoded two-pool path (WETH -> WBTC -> USDC) and pays what QuoterV2 quotes
    for that path."""
    usdc, wbtc, weth = ew.token("USDC"), ew.token("WBTC"), ew.token("WETH")
    path = encode_path([weth.address, wbtc.address, usdc.address], [FEE, FEE])
    swap = Swap(ew.uni.router, path, 0, 0)
    profit, receipt = await run_flow(ew, "morpho_blue, two-hop path", morpho_call(ew, swap, seized=weth.units(5)), usdc)
    [(repaid, _, seized, _, _)] = events(
        receipt, ew.world.extra["morpho"].morpho,
        "Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)", ["uint256"] * 5)
    out = await swap_out(ew, receipt, usdc)
    assert out == await quote_before(ew, receipt, path, seized)
    assert profit == out - repaid


async def test_profit_in_the_collateral_token(ew):
    """The owner may ask for its profit in another token than the debt: here only 4.9 of the 5 WETH
    seized are sold (enough to repay Morpho), and the check is on the 0.1 WETH left. Every token
    still goes to the owner (the USDC the sale paid beyond the repayment too)."""
    usdc, weth = ew.token("USDC"), ew.token("WETH")
    swap = ew.swap_all("WETH", "USDC")
    build = morpho_call(ew, Swap(swap.router, swap.path, weth.units(4.9), 0), seized=weth.units(5))
    assert await preview(ew, build(Profit(weth.address, 0))) == weth.units(0.1)
    name, (got, need) = await executor_error(ew, build(Profit(weth.address, weth.units(0.1) + 1)))
    assert name == "InsufficientProfit" and got == weth.units(0.1)
    receipt = await send(ew, build(Profit(weth.address, weth.units(0.1))))
    assert receipt.status == 1
    assert await balance(ew, weth.address, ew.owner.address) == weth.units(0.1)
    assert await balance(ew, usdc.address, ew.owner.address) > 0
    await assert_executor_clean(ew, receipt)


# ------------------------------------------------------------------------------------------ cannot repay

SHALLOW_FEE = 10_000  # a WETH/USDC pool of its own fee tier, holding about $3,000 a side


async def build_case(ew: ExecWorld, case: str, fee: int):
    """The calldata builder of ``case`` with every swap routed through the ``fee`` WETH/USDC pool."""
    usdc, weth = ew.token("USDC"), ew.token("WETH")
    swap = ew.swap_all("WETH", "USDC", fee=fee)
    if case == "aave_v3":
        return aave_call(ew, swap, FlashSource.AAVE_V3, debt=usdc.units(10_000))
    if case == "morpho_blue":
        return morpho_call(ew, swap, seized=weth.units(5))
    if case == "compound_v3":
        return comet_call(ew, swap, FlashSource.UNISWAP_V3, base_amount=usdc.units(10_000))
    if case == "gearbox_partial":
        return await gearbox_partial_call(ew, swap, FlashSource.MORPHO_BLUE, repaid=usdc.units(5_000))
    return (await gearbox_full_call(ew, 5, FlashSource.MORPHO_BLUE, fee=fee))[0]


CASES = ["aave_v3", "morpho_blue", "compound_v3", "gearbox_partial", "gearbox_full"]


@pytest.mark.parametrize("case", CASES)
async def test_flow_whose_swap_cannot_repay_reverts(ew, case):
    """Selling the collateral in a pool far too shallow for it does not pay back what was borrowed:
    the executor's own profit check reverts (a negative profit against a minimum of 0), before the
    lender's transfer would; sent anyway, the transaction reverts on chain and moves nothing."""
    usdc, weth = ew.token("USDC"), ew.token("WETH")
    await create_pool_at_price(ew.d, ew.uni, weth, usdc, SHALLOW_FEE, liquidity_usd=3_000)
    build = await build_case(ew, case, SHALLOW_FEE)
    name, (profit, minimum) = await executor_error(ew, build(Profit(usdc.address, 0)))
    assert name == "InsufficientProfit" and minimum == 0 and profit < -usdc.units(1_000)
    # The same flow through the deep pool pays: only the swap makes the difference.
    assert await preview(ew, (await build_case(ew, case, FEE))(Profit(usdc.address, 0))) > 0
    receipt = await send(ew, build(Profit(usdc.address, 0)), gas=3_000_000)
    assert receipt.status == 0
    assert await balance(ew, usdc.address, ew.owner.address) == 0
    for t in ew.world.tokens.values():
        assert await balance(ew, t.address, ew.executor) == 0


async def test_swap_minimum_output_is_enforced(ew):
    """amountOutMinimum reaches SwapRouter.exactInput: one unit above the quote reverts there."""
    usdc, weth = ew.token("USDC"), ew.token("WETH")
    seized = weth.units(5)
    swap = ew.swap_all("WETH", "USDC")
    quoted = await quote_exact_input(ew, swap.path, seized)
    ok = morpho_call(ew, Swap(swap.router, swap.path, 0, quoted), seized=seized)
    assert await preview(ew, ok(Profit(usdc.address, 0))) > 0
    too_much = morpho_call(ew, Swap(swap.router, swap.path, 0, quoted + 1), seized=seized)
    raw = await revert_of(ew, too_much(Profit(usdc.address, 0)))
    assert raw[:4] == keccak(text="Error(string)")[:4] and decode(["string"], raw[4:]) == ("Too little received",)
