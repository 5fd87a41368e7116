from eth_utils import keccak
from keeper_devnet.multicall3 import CANONICAL_CODEHASH, install_multicall3
from keeper_devnet.tokens import deploy_token, mint

from keeper.chain.client import Chain
from keeper.chain.multicall import MULTICALL3, Call, CallFailed, calldata, returns
from keeper.chain.rpc import Rpc


async def test_canonical_multicall3_answers_batched_reads(anvil, deployer, snapshot):
    await install_multicall3(deployer)
    code = bytes(await deployer.w3.eth.get_code(MULTICALL3))
    assert "0x" + keccak(code).hex() == CANONICAL_CODEHASH
    usdc = await deploy_token(deployer, "USDC", 6, 10**8)
    await mint(deployer, usdc, deployer.sender, 123)
    chain = Chain(Rpc(anvil.url))
    try:
        before = chain.rpc.requests
        bal, bad = await chain.multicall([
            Call(usdc.address, calldata("balanceOf(address)", ["address"], [deployer.sender]), returns("uint256")),
            Call(usdc.address, calldata("nope()")),  # fails: allowFailure keeps the batch alive
        ])
        assert chain.rpc.requests == before + 1  # one eth_call to Multicall3 for both reads
    finally:
        await chain.rpc.close()
    assert bal == 123
    assert isinstance(bad, CallFailed)
