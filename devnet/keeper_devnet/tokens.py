"""Test tokens (a mintable ERC20 written here) and Chainlink-style price feeds (MockV3Aggregator
from the @chainlink/contracts package) for the local world."""
from __future__ import annotations

from dataclasses import dataclass

from keeper_devnet.deploy import Deployer
from keeper_devnet.solc import Artifact, compile_contract

MOCK_V3_AGGREGATOR = "@chainlink/contracts/src/v0.8/shared/mocks/MockV3Aggregator.sol"
TEST_ERC20 = "devnet/keeper_devnet/contracts/TestERC20.sol"
FEED_DECIMALS = 8


@dataclass
class Token:
    symbol: str
    address: str
    decimals: int
    feed: str  # MockV3Aggregator with 8 decimals, USD price
    price: int  # current USD price, 8 decimals

    def units(self, amount: float | int) -> int:
        """Whole-token amount -> smallest units (for set-up code only)."""
        return round(amount * 10**self.decimals)


async def erc20_artifact() -> Artifact:
    return await compile_contract(TEST_ERC20, "TestERC20")


async def feed_artifact() -> Artifact:
    return await compile_contract(MOCK_V3_AGGREGATOR, "MockV3Aggregator")


async def deploy_token(d: Deployer, symbol: str, decimals: int, price_usd_8: int) -> Token:
    erc20, feed = await erc20_artifact(), await feed_artifact()
    addr = await d.deploy(erc20, f"Test {symbol}", symbol, decimals)
    feed_addr = await d.deploy(feed, FEED_DECIMALS, price_usd_8)
    return Token(symbol, addr, decimals, feed_addr, price_usd_8)


# Default demo assets: a 6-, an 8- and an 18-decimal token.
DEFAULT_ASSETS = [("USDC", 6, 1_00000000), ("WBTC", 8, 60_000_00000000), ("WETH", 18, 3_000_00000000)]


async def deploy_default_tokens(d: Deployer, assets=DEFAULT_ASSETS) -> dict[str, Token]:
    return {s: await deploy_token(d, s, dec, p) for s, dec, p in assets}


async def set_price(d: Deployer, token: Token, price_usd_8: int) -> None:
    """Push a new answer to the token's feed (a new Chainlink round)."""
    feed = await feed_artifact()
    await d.transact(token.feed, feed.abi, "updateAnswer", price_usd_8)
    token.price = price_usd_8


async def mint(d: Deployer, token: Token, to: str, amount: int) -> None:
    await d.transact(token.address, (await erc20_artifact()).abi, "mint", to, amount)


async def approve(d: Deployer, token: Token, owner: str, spender: str, amount: int) -> None:
    await d.transact(token.address, (await erc20_artifact()).abi, "approve", spender, amount,
                     sender=owner)


async def balance_of(d: Deployer, token: Token, who: str) -> int:
    return await d.call(token.address, (await erc20_artifact()).abi, "balanceOf", who)
