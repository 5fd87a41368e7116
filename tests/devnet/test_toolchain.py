from keeper.devnet.solc import compile_contract


async def test_compile_and_deploy_erc20(deployer, snapshot):
    art = await compile_contract("contracts/test/TestERC20.sol", "TestERC20")
    addr = await deployer.deploy(art, "USD Coin", "USDC", 6)
    me = deployer.sender
    await deployer.transact(addr, art.abi, "mint", me, 10**6)
    assert await deployer.call(addr, art.abi, "balanceOf", me) == 10**6
    assert await deployer.call(addr, art.abi, "decimals") == 6
