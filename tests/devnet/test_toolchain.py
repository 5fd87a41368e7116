import pytest

from keeper_devnet.solc import compile_contract

pytestmark = pytest.mark.anvil  # needs the node tools (npm ci)


async def test_compile_and_deploy_erc20(deployer, snapshot):
    art = await compile_contract("devnet/keeper_devnet/contracts/TestERC20.sol", "TestERC20")
    addr = await deployer.deploy(art, "USD Coin", "USDC", 6)
    me = deployer.sender
    await deployer.transact(addr, art.abi, "mint", me, 10**6)
    assert await deployer.call(addr, art.abi, "balanceOf", me) == 10**6
    assert await deployer.call(addr, art.abi, "decimals") == 6
