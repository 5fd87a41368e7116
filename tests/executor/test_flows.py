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
from keeper_devnet.protocols.gearbox_v3.world import account_state, price_updates
from keeper_devnet.protocols.morpho_blue.world import position
from keeper_devnet.tokens import Token

from keeper.abi import Abi
from keeper.executor import (
    AaveV3Liquidation,
    CompoundV3Liquidation,
    Flash,
    FlashSource,
    GearboxFullLiquidation,
    GearboxPartialLiquidation,
    MarketParams,
    MorphoBlueLiquidation,
    PriceUpdate,
    Profit,
    Swap,
    encode_path,
    liquidate_aave_v3,
    liquidate_compound_v3,
    liquidate_gearbox_full,
    liquidate_gearbox_partial,
    liquidate_morpho_blue,
)
from keeper_devnet.uniswap import pool_artifact, quoter_artifact

from tests.executor.helpers import (
    ExecWorld,
    assert_executor_clean,
    balance,
    build_exec_world,
    events,
    executor_error,
    preview,
    send,
)

pytestmark = pytest.mark.anvil

SWAP_EVENT = "Swap(address,address,int256,int256,uint160,uint128,int24)"
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


def flash_of(ew: ExecWorld, source: FlashSource) -> Flash:
    lender = {FlashSource.MORPHO_BLUE: ew.world.extra["morpho"].morpho,
              FlashSource.AAVE_V3: ew.world.aave.pool,
              FlashSource.UNISWAP_V3: ew.pools["WBTC/USDC"].address}[source]
    return Flash(source, lender)


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
    usdc, weth = ew.token("USDC"), ew.token("WETH")
    user = ew.world.extra["aave_borrowers"][0]  # 10 WETH, 20,000 USDC: HF 0.866, close factor 100%
    debt = usdc.units(10_000)
    flash = flash_of(ew, source)
    swap = ew.swap_all("WETH", "USDC")
    liq = AaveV3Liquidation(ew.world.aave.pool, weth.address, usdc.address, user, debt)
    profit, receipt = await run_flow(ew, f"aave_v3 ({source.name.lower()} flash)",
                                     lambda p: liquidate_aave_v3(liq, flash, swap, p), usdc)
    (_, seized, liquidator, _), = events(receipt, ew.world.aave.pool,
                                         "LiquidationCall(address,address,address,uint256,uint256,address,bool)",
                                         ["uint256", "uint256", "address", "bool"])
    assert liquidator.lower() == ew.executor.lower()
    out = await swap_out(ew, receipt, usdc)
    assert out == await quote_before(ew, receipt, swap.path, seized)
    fee = {FlashSource.MORPHO_BLUE: 0, FlashSource.AAVE_V3: debt * AAVE_PREMIUM_BPS // 10_000,
           FlashSource.UNISWAP_V3: -(-debt * 3000 // 1_000_000)}[source]
    assert profit == out - debt - fee
