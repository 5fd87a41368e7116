"""The real Uniswap V3 (@uniswap/v3-core 1.0.1 + @uniswap/v3-periphery 1.4.4) from the packages'
Hardhat artifacts: UniswapV3Factory, SwapRouter (v1: params carry a deadline), QuoterV2 and the
NonfungiblePositionManager (zero token descriptor: only tokenURI reverts), over Aave's WETH9 artifact
(v3 ships none). Pools are created at the ratio of the tokens' oracle prices and seeded with a
full-range position."""
from __future__ import annotations

import math
from dataclasses import dataclass

from keeper_devnet.artifacts import npm_artifact
from keeper_devnet.deploy import Deployer
from keeper_devnet.solc import Artifact
from keeper_devnet.tokens import Token, approve, mint

UNISWAP_CODE = "@uniswap/v3-core@1.0.1 + @uniswap/v3-periphery@1.4.4"
_CORE = "@uniswap/v3-core/artifacts/contracts"
_PERIPHERY = "@uniswap/v3-periphery/artifacts/contracts"
ZERO = "0x0000000000000000000000000000000000000000"
MIN_TICK, MAX_TICK = -887272, 887272  # TickMath
Q96 = 2**96


def factory_artifact() -> Artifact:
    return npm_artifact(f"{_CORE}/UniswapV3Factory.sol/UniswapV3Factory.json")


def pool_artifact() -> Artifact:
    return npm_artifact(f"{_CORE}/UniswapV3Pool.sol/UniswapV3Pool.json")


def router_artifact() -> Artifact:
    return npm_artifact(f"{_PERIPHERY}/SwapRouter.sol/SwapRouter.json")


def quoter_artifact() -> Artifact:
    return npm_artifact(f"{_PERIPHERY}/lens/QuoterV2.sol/QuoterV2.json")


def position_manager_artifact() -> Artifact:
    return npm_artifact(f"{_PERIPHERY}/NonfungiblePositionManager.sol/NonfungiblePositionManager.json")


def weth9_artifact() -> Artifact:
    return npm_artifact("@aave/core-v3/artifacts/contracts/dependencies/weth/WETH9.sol/WETH9.json")


@dataclass
class UniswapDeployment:
    factory: str
    router: str
    quoter: str
    position_manager: str
    weth: str
    code: str = UNISWAP_CODE


@dataclass
class UniswapPool:
    address: str
    token0: Token  # the lower address, as the pool orders them
    token1: Token
    fee: int
    position_id: int  # the NonfungiblePositionManager token of the seeding position
    liquidity: int


@dataclass
class Quote:
    amount_out: int
    sqrt_price_x96_after: int
    initialized_ticks_crossed: int
    gas_estimate: int


async def deploy_uniswap_v3(d: Deployer) -> UniswapDeployment:
    weth = await d.deploy(weth9_artifact())
    factory = await d.deploy(factory_artifact())
    router = await d.deploy(router_artifact(), factory, weth)
    quoter = await d.deploy(quoter_artifact(), factory, weth)
    npm = await d.deploy(position_manager_artifact(), factory, weth, ZERO)  # no descriptor
    return UniswapDeployment(factory, router, quoter, npm, weth)


def sorted_pair(a: Token, b: Token) -> tuple[Token, Token]:
    return (a, b) if int(a.address, 16) < int(b.address, 16) else (b, a)


def sqrt_price_x96(token0: Token, token1: Token) -> int:
    """sqrt(price of 1 raw unit of token0 in raw units of token1) * 2**96, from the tokens' 8-decimal
    USD prices: price = (p0 / 10**d0) / (p1 / 10**d1)."""
    num = token0.price * 10**token1.decimals
    den = token1.price * 10**token0.decimals
    return math.isqrt((num << 192) // den)


def pool_price(sqrt_x96: int, token0: Token, token1: Token) -> float:
    """Whole token1 per whole token0 at ``sqrt_x96`` (for display and tolerance checks only)."""
    return (sqrt_x96 / Q96) ** 2 * 10**token0.decimals / 10**token1.decimals


async def create_pool_at_price(d: Deployer, uni: UniswapDeployment, token_a: Token, token_b: Token,
                               fee: int = 3000, liquidity_usd: int = 10_000_000,
                               lp: str | None = None) -> UniswapPool:
    """Create and initialize the (token_a, token_b, fee) pool at the oracle price ratio and mint a
    full-range position worth about ``liquidity_usd`` on each side (tokens minted to ``lp``, by
    default the deployer). With $10M a side a $100k swap moves the price by about 2%."""
    lp = lp or d.sender
    t0, t1 = sorted_pair(token_a, token_b)
    npm_abi = position_manager_artifact().abi
    await d.transact(uni.position_manager, npm_abi, "createAndInitializePoolIfNecessary",
                     t0.address, t1.address, fee, sqrt_price_x96(t0, t1))
    pool = await d.call(uni.factory, factory_artifact().abi, "getPool", t0.address, t1.address, fee)
    spacing = await d.call(uni.factory, factory_artifact().abi, "feeAmountTickSpacing", fee)
    if spacing == 0:
        raise ValueError(f"fee tier {fee} is not enabled on the factory")
    lower, upper = -(MAX_TICK // spacing) * spacing, (MAX_TICK // spacing) * spacing
    amounts = [liquidity_usd * 10**8 * 10**t.decimals // t.price for t in (t0, t1)]
    for t, amount in zip((t0, t1), amounts):
        await mint(d, t, lp, amount)
        await approve(d, t, lp, uni.position_manager, amount)
    deadline = await _deadline(d)
    receipt = await d.transact(uni.position_manager, npm_abi, "mint",
                               (t0.address, t1.address, fee, lower, upper, amounts[0], amounts[1], 0, 0,
                                lp, deadline), sender=lp)
    [inc] = _events(d, uni.position_manager, npm_abi, receipt, "IncreaseLiquidity")
    return UniswapPool(pool, t0, t1, fee, inc["tokenId"], inc["liquidity"])


async def slot0_sqrt_price(d: Deployer, pool: UniswapPool | str) -> int:
    address = pool.address if isinstance(pool, UniswapPool) else pool
    return (await d.call(address, pool_artifact().abi, "slot0"))[0]


async def quote_exact_input_single(d: Deployer, uni: UniswapDeployment, token_in: Token, token_out: Token,
                                   amount_in: int, fee: int = 3000, sqrt_price_limit_x96: int = 0) -> Quote:
    """QuoterV2 through eth_call (its quote functions are nonpayable: they revert internally)."""
    out = await d.call(uni.quoter, quoter_artifact().abi, "quoteExactInputSingle",
                       (token_in.address, token_out.address, amount_in, fee, sqrt_price_limit_x96))
    return Quote(*out)


async def swap_exact_input_single(d: Deployer, uni: UniswapDeployment, trader: str, token_in: Token,
                                  token_out: Token, amount_in: int, fee: int = 3000, amount_out_min: int = 0,
                                  recipient: str | None = None, sqrt_price_limit_x96: int = 0,
                                  approve_router: bool = True) -> int:
    """SwapRouter.exactInputSingle from ``trader`` (who holds ``amount_in``); returns amountOut as the
    pool's Swap event reports it."""
    if approve_router:
        await approve(d, token_in, trader, uni.router, amount_in)
    receipt = await d.transact(uni.router, router_artifact().abi, "exactInputSingle",
                               (token_in.address, token_out.address, fee, recipient or trader,
                                await _deadline(d), amount_in, amount_out_min, sqrt_price_limit_x96),
                               sender=trader)
    pool = await d.call(uni.factory, factory_artifact().abi, "getPool", token_in.address, token_out.address, fee)
    [swap] = _events(d, pool, pool_artifact().abi, receipt, "Swap")
    # Pool deltas are from the pool's side: the token paid out is negative.
    return -min(swap["amount0"], swap["amount1"])


async def _deadline(d: Deployer, seconds: int = 3600) -> int:
    return (await d.w3.eth.get_block("latest"))["timestamp"] + seconds


def _events(d: Deployer, address: str, abi: list, receipt: dict, name: str) -> list[dict]:
    event = d.at(address, abi).events[name]()
    topic = bytes.fromhex(event.topic.removeprefix("0x"))
    return [dict(event.process_log(lg)["args"]) for lg in receipt["logs"]
            if lg["address"].lower() == address.lower() and lg["topics"] and bytes(lg["topics"][0]) == topic]


# Pools of the local world: every collateral / debt pair of its lending markets, at the oracle price.
WORLD_PAIRS = [("WETH", "USDC"), ("WBTC", "USDC"), ("WETH", "WBTC")]


async def add_uniswap_to_world(d: Deployer, world, *, liquidity_usd: int = 10_000_000) -> UniswapDeployment:
    """Uniswap V3 (factory, SwapRouter, QuoterV2, NonfungiblePositionManager) with a full-range pool
    at the oracle price for each of WORLD_PAIRS; kept in world.extra["uniswap"] and ["uniswap_pools"]
    (a swap venue for the keeper, not a protocol it liquidates on)."""
    uni = await deploy_uniswap_v3(d)
    pools = {f"{a}/{b}": await create_pool_at_price(d, uni, world.tokens[a], world.tokens[b],
                                                     liquidity_usd=liquidity_usd)
             for a, b in WORLD_PAIRS}
    world.extra["uniswap"] = uni
    world.extra["uniswap_pools"] = pools
    return uni
