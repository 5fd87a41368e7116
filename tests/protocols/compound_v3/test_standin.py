"""The Compound III stand-in on Anvil: Comet's health check, absorb, the collateral store front and
interest accrual, checked against on-chain effects and an independent integer model of Comet's maths."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_utils import keccak
from keeper_devnet.deploy import Deployer, DeployError
from keeper_devnet.protocols.compound_v3.world import (
    CometDeployment,
    borrow,
    comet_abi,
    comet_call,
    comet_transact,
    deploy_comet,
    fund_reserves,
    supply_base,
    supply_collateral,
    withdraw_reserves,
)
from keeper_devnet.tokens import (
    approve,
    balance_of,
    deploy_default_tokens,
    mint,
    set_price,
)
from web3.exceptions import ContractCustomError

F = 10**18  # FACTOR_SCALE
USDC = 10**6
YEAR = 365 * 86400


@dataclass
class Env:
    d: Deployer
    dep: CometDeployment
    lender: str
    borrower: str
    absorber: str
    buyer: str


@pytest.fixture(scope="module")
async def env(deployer) -> Env:
    tokens = await deploy_default_tokens(deployer)
    dep = await deploy_comet(deployer, tokens)
    lender, borrower, absorber, buyer = (await deployer.w3.eth.accounts)[30:34]
    await supply_base(deployer, dep, lender, 1_000_000 * USDC)
    return Env(deployer, dep, lender, borrower, absorber, buyer)


@pytest.fixture
async def e(env, snapshot):
    """The module's market inside a snapshot; Token.price (Python side) restored with the chain."""
    prices = {t.symbol: t.price for t in (env.dep.base, *env.dep.collaterals.values())}
    yield env
    for t in (env.dep.base, *env.dep.collaterals.values()):
        t.price = prices[t.symbol]


async def call(e: Env, fn: str, *args):
    return await comet_call(e.d, e.dep, fn, *args)


async def events(e: Env, receipt: dict, name: str) -> list[dict]:
    """Decoded args of Comet's ``name`` events in the receipt (other contracts' logs skipped)."""
    event = e.d.at(e.dep.comet, await comet_abi()).events[name]()
    topic = bytes.fromhex(event.topic.removeprefix("0x"))
    return [dict(event.process_log(log)["args"]) for log in receipt["logs"]
            if log["address"] == e.dep.comet and log["topics"] and bytes(log["topics"][0]) == topic]


async def expect_revert(coro, error: str) -> None:
    """The transaction reverts with Comet's custom error ``error`` (selector match)."""
    with pytest.raises(DeployError) as info:
        await coro
    cause = info.value.__cause__
    assert isinstance(cause, ContractCustomError), repr(info.value)
    assert cause.data[:10] == "0x" + keccak(text=f"{error}()")[:4].hex()


async def mine_after(e: Env, seconds: int) -> None:
    await e.d.rpc("evm_increaseTime", [seconds])
    await e.d.rpc("evm_mine", [])


async def open_weth_position(e: Env, weth: int = 10, debt_usdc: int = 24_000) -> dict:
    """10 WETH at $3,000 (borrow limit 0.825 -> $24,750), borrowing $24,000."""
    await supply_collateral(e.d, e.dep, e.borrower, "WETH", weth * 10**18)
    return await borrow(e.d, e.dep, e.borrower, debt_usdc * USDC)


def quote_model(base_amount: int, asset_price: int, base_price: int, asset_scale: int, base_scale: int,
                liquidation_factor: int, store_front: int) -> int:
    """Comet.quoteCollateral: discount = storeFront x (1 - liquidationFactor), price x (1 - discount),
    then basePrice x baseAmount x assetScale / discountedPrice / baseScale, each step truncating."""
    discount = store_front * (F - liquidation_factor) // F
    discounted = asset_price * (F - discount) // F
    return base_price * base_amount * asset_scale // discounted // base_scale


async def test_config_getters(e):
    dep = e.dep
    weth, wbtc = dep.collaterals["WETH"], dep.collaterals["WBTC"]
    assert await call(e, "numAssets") == 2
    assert await call(e, "getAssetInfo", 0) == (
        0, weth.address, weth.feed, 10**18, 825 * 10**15, 895 * 10**15, 95 * 10**16, 100_000 * 10**18)
    assert await call(e, "getAssetInfoByAddress", wbtc.address) == (
        1, wbtc.address, wbtc.feed, 10**8, 70 * 10**16, 77 * 10**16, 95 * 10**16, 10_000 * 10**8)
    assert await call(e, "baseToken") == dep.base.address
    assert await call(e, "baseTokenPriceFeed") == dep.base.feed
    assert await call(e, "baseScale") == USDC
    assert await call(e, "storeFrontPriceFactor") == 6 * 10**17
    assert await call(e, "targetReserves") == 5_000_000 * USDC
    assert await call(e, "baseBorrowMin") == 100 * USDC
    assert await call(e, "getPrice", weth.feed) == 3_000 * 10**8
    assert await call(e, "balanceOf", e.lender) == 1_000_000 * USDC


async def test_borrow_then_price_drop_then_absorb(e):
    d, dep = e.d, e.dep
    weth = dep.collaterals["WETH"]
    receipt = await open_weth_position(e)
    assert await events(e, receipt, "Withdraw") == [{"src": e.borrower, "to": e.borrower, "amount": 24_000 * USDC}]
    assert await balance_of(d, dep.base, e.borrower) == 24_000 * USDC
    assert 24_000 * USDC <= await call(e, "borrowBalanceOf", e.borrower) <= 24_000 * USDC + 1
    assert await call(e, "collateralBalanceOf", e.borrower, weth.address) == 10 * 10**18
    assert await call(e, "isBorrowCollateralized", e.borrower)
    assert not await call(e, "isLiquidatable", e.borrower)
    # Borrowing beyond borrowCF is refused.
    await expect_revert(borrow(d, dep, e.borrower, 1_000 * USDC), "NotCollateralized")
    await expect_revert(comet_transact(d, dep, "absorb", e.absorber, [e.borrower], sender=e.absorber),
                        "NotLiquidatable")

    # 10 x $2,617.12 x 0.895 = $23,423 < $24,000 of debt.
    price = 2_617_12345678
    await set_price(d, weth, price)
    assert await call(e, "isLiquidatable", e.borrower)
    reserves_before = await call(e, "getReserves")
    weth_reserves_before = await call(e, "getCollateralReserves", weth.address)

    receipt = await comet_transact(d, dep, "absorb", e.absorber, [e.borrower], sender=e.absorber)
    value = 10 * 10**18 * price // 10**18  # mulPrice(collateral, price, scale), USD 8 dec
    credit = value * 95 * 10**16 // F * USDC // 10**8  # divPrice(mulFactor(value, LF), basePrice=1e8, baseScale)
    assert await events(e, receipt, "AbsorbCollateral") == [{
        "absorber": e.absorber, "borrower": e.borrower, "asset": weth.address,
        "collateralAbsorbed": 10 * 10**18, "usdValue": value}]
    assert await events(e, receipt, "AbsorbDebt") == [{
        "absorber": e.absorber, "borrower": e.borrower, "basePaidOut": credit, "usdValue": credit * 10**8 // USDC}]

    assert await call(e, "borrowBalanceOf", e.borrower) == 0
    assert await call(e, "collateralBalanceOf", e.borrower, weth.address) == 0
    # The excess of the credit over the debt stays with the account as a supply balance.
    assert 0 < await call(e, "balanceOf", e.borrower) <= credit - 24_000 * USDC
    assert await call(e, "getCollateralReserves", weth.address) == weth_reserves_before + 10 * 10**18
    assert await balance_of(d, weth, dep.comet) == 10 * 10**18  # tokens stay in Comet, now owned by it
    # Reserves pay for it: total borrow drops by the debt, total supply grows by the excess credit.
    assert abs(await call(e, "getReserves") - (reserves_before - credit)) <= 10**4
    assert not await call(e, "isLiquidatable", e.borrower)
    assert tuple(await call(e, "liquidatorPoints", e.absorber))[:2] == (1, 1)


async def _absorbed(e: Env) -> None:
    await open_weth_position(e)
    await set_price(e.d, e.dep.collaterals["WETH"], 2_617_12345678)
    await comet_transact(e.d, e.dep, "absorb", e.absorber, [e.borrower], sender=e.absorber)


async def test_quote_and_buy_collateral(e):
    d, dep = e.d, e.dep
    weth, wbtc = dep.collaterals["WETH"], dep.collaterals["WBTC"]
    await _absorbed(e)
    assert await call(e, "getReserves") < await call(e, "targetReserves")

    base_amount = 10_000 * USDC
    for token, lf in ((weth, 95 * 10**16), (wbtc, 95 * 10**16)):
        expected = quote_model(base_amount, await call(e, "getPrice", token.feed), 10**8, 10**token.decimals,
                               USDC, lf, 6 * 10**17)
        assert await call(e, "quoteCollateral", token.address, base_amount) == expected
    quote = await call(e, "quoteCollateral", weth.address, base_amount)
    assert quote == 10**8 * base_amount * 10**18 // (2_617_12345678 * (F - 3 * 10**16) // F) // USDC

    await mint(d, dep.base, e.buyer, 2 * base_amount)
    await approve(d, dep.base, e.buyer, dep.comet, 2 * base_amount)

    def buy(asset: str, min_amount: int):
        return comet_transact(d, dep, "buyCollateral", asset, min_amount, base_amount, e.buyer, sender=e.buyer)

    await expect_revert(buy(weth.address, quote + 1), "TooMuchSlippage")
    await expect_revert(buy(wbtc.address, 0), "InsufficientReserves")  # the protocol holds no WBTC

    reserves_before = await call(e, "getCollateralReserves", weth.address)
    receipt = await buy(weth.address, quote)
    assert await events(e, receipt, "BuyCollateral") == [
        {"buyer": e.buyer, "asset": weth.address, "baseAmount": base_amount, "collateralAmount": quote}]
    assert await balance_of(d, weth, e.buyer) == quote
    assert await balance_of(d, dep.base, e.buyer) == base_amount
    assert await call(e, "getCollateralReserves", weth.address) == reserves_before - quote


async def test_buy_collateral_not_for_sale_at_target_reserves(e):
    d, dep = e.d, e.dep
    weth = dep.collaterals["WETH"]
    await _absorbed(e)
    reserves = await call(e, "getReserves")
    await fund_reserves(d, dep, 5_000_000 * USDC - reserves)
    assert await call(e, "getReserves") >= await call(e, "targetReserves")
    await mint(d, dep.base, e.buyer, 1_000 * USDC)
    await approve(d, dep.base, e.buyer, dep.comet, 1_000 * USDC)
    await expect_revert(
        comet_transact(d, dep, "buyCollateral", weth.address, 0, 1_000 * USDC, e.buyer, sender=e.buyer), "NotForSale")
    assert await balance_of(d, weth, e.buyer) == 0
    # Back below target (governor withdraws reserves): the store front reopens.
    await withdraw_reserves(d, dep, d.sender, 10_000 * USDC)
    assert await call(e, "getReserves") < await call(e, "targetReserves")
    quote = await call(e, "quoteCollateral", weth.address, 1_000 * USDC)
    await comet_transact(d, dep, "buyCollateral", weth.address, quote, 1_000 * USDC, e.buyer, sender=e.buyer)
    assert await balance_of(d, weth, e.buyer) == quote > 0


async def test_interest_alone_makes_position_liquidatable(e):
    d, dep = e.d, e.dep
    wbtc = dep.collaterals["WBTC"]
    # 1 WBTC at $60,000: borrow limit 0.7 -> $42,000, liquidation at 0.77 -> $46,200.
    await supply_collateral(d, dep, e.borrower, "WBTC", 10**8)
    await borrow(d, dep, e.borrower, 41_900 * USDC)
    index0 = (await call(e, "totalsBasic"))[1]

    await mine_after(e, YEAR)
    await comet_transact(d, dep, "accrueAccount", e.borrower)
    debt_1y = await call(e, "borrowBalanceOf", e.borrower)
    assert debt_1y > 41_900 * USDC * 1015 // 1000  # at least the 1.5% base rate
    assert not await call(e, "isLiquidatable", e.borrower)

    await mine_after(e, 9 * YEAR)
    # borrowBalanceOf projects the accrued index; isLiquidatable reads the stored one (as Comet does),
    # so it only flips once something accrues the market.
    assert await call(e, "borrowBalanceOf", e.borrower) > 46_200 * USDC
    assert not await call(e, "isLiquidatable", e.borrower)
    await comet_transact(d, dep, "accrueAccount", e.borrower)
    assert await call(e, "isLiquidatable", e.borrower)
    assert (await call(e, "totalsBasic"))[1] > index0
    assert await call(e, "getPrice", wbtc.feed) == 60_000 * 10**8  # the price never moved

    receipt = await comet_transact(d, dep, "absorb", e.absorber, [e.borrower], sender=e.absorber)
    [ev] = await events(e, receipt, "AbsorbCollateral")
    assert (ev["asset"], ev["collateralAbsorbed"], ev["usdValue"]) == (wbtc.address, 10**8, 60_000 * 10**8)
    assert await call(e, "borrowBalanceOf", e.borrower) == 0
    assert await call(e, "getCollateralReserves", wbtc.address) == 10**8
