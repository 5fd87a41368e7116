from keeper_devnet.tokens import (
    balance_of,
    deploy_default_tokens,
    feed_artifact,
    mint,
    set_price,
)


async def test_tokens_and_feeds(deployer, snapshot):
    tokens = await deploy_default_tokens(deployer)
    assert [t.decimals for t in tokens.values()] == [6, 8, 18]
    weth = tokens["WETH"]
    await mint(deployer, weth, deployer.sender, weth.units(2))
    assert await balance_of(deployer, weth, deployer.sender) == 2 * 10**18
    await set_price(deployer, weth, 2_100_00000000)
    feed = await feed_artifact()
    rd = await deployer.call(weth.feed, feed.abi, "latestRoundData")
    assert rd[1] == 2_100_00000000 and rd[0] == 2
