"""Rollup fee predeploys on a local Anvil, for testing the keeper's L1-fee reads.

- OP stack: the real GasPriceOracle and L1Block code (@eth-optimism/contracts-bedrock forge
  artifacts) put at their predeploy addresses with anvil_setCode, the L1 values set the way the chain
  sets them (the depositor account calls L1Block.setL1BlockValuesEcotone), and the upgrade flags set
  with GasPriceOracle.setEcotone / setFjord from the depositor.
- Arbitrum: NodeInterface is answered by the Arbitrum node itself (no bytecode exists), so a stand-in
  with its gasEstimateL1Component signature is put at 0x..C8.
"""
from __future__ import annotations

from dataclasses import dataclass

from eth_utils import keccak

from keeper_devnet.artifacts import npm_artifact
from keeper_devnet.deploy import Deployer
from keeper_devnet.solc import compile_contract

GAS_PRICE_ORACLE = "0x420000000000000000000000000000000000000F"
L1_BLOCK = "0x4200000000000000000000000000000000000015"
NODE_INTERFACE = "0x00000000000000000000000000000000000000C8"
DEPOSITOR = "0xDeaDDEaDDeAdDeAdDEAdDEaddeAddEAdDEAd0001"  # Constants.DEPOSITOR_ACCOUNT
BEDROCK = "@eth-optimism/contracts-bedrock/forge-artifacts"
NODE_INTERFACE_SOL = "devnet/keeper_devnet/contracts/NodeInterfaceStandIn.sol"


@dataclass(frozen=True)
class L1Values:
    """What L1Block holds after setL1BlockValuesEcotone (the fee inputs of Ecotone and Fjord)."""
    base_fee: int  # L1 base fee, wei
    blob_base_fee: int  # L1 blob base fee, wei
    base_fee_scalar: int  # uint32
    blob_base_fee_scalar: int  # uint32
    number: int = 20_000_000
    timestamp: int = 1_700_000_000
    sequence_number: int = 0

    def calldata(self) -> bytes:
        """setL1BlockValuesEcotone's packed arguments (L1Block.sol: baseFeeScalar, blobBaseFeeScalar,
        sequenceNumber, timestamp, number, basefee, blobBaseFee, hash, batcherHash)."""
        return (keccak(text="setL1BlockValuesEcotone()")[:4]
                + self.base_fee_scalar.to_bytes(4, "big") + self.blob_base_fee_scalar.to_bytes(4, "big")
                + self.sequence_number.to_bytes(8, "big") + self.timestamp.to_bytes(8, "big")
                + self.number.to_bytes(8, "big") + self.base_fee.to_bytes(32, "big")
                + self.blob_base_fee.to_bytes(32, "big") + b"\x11" * 32 + b"\x00" * 32)


async def _as_depositor(d: Deployer, to: str, data: bytes, what: str) -> None:
    await d.rpc("anvil_impersonateAccount", [DEPOSITOR])
    await d.rpc("anvil_setBalance", [DEPOSITOR, hex(10**18)])
    try:
        await d._send({"from": DEPOSITOR, "to": to, "data": "0x" + data.hex()}, what)
    finally:
        await d.rpc("anvil_stopImpersonatingAccount", [DEPOSITOR])


async def set_l1_values(d: Deployer, values: L1Values) -> None:
    await _as_depositor(d, L1_BLOCK, values.calldata(), "L1Block.setL1BlockValuesEcotone")


async def install_op_stack(d: Deployer, values: L1Values, *, fjord: bool = True) -> None:
    """GasPriceOracle and L1Block at their predeploy addresses, Ecotone (and Fjord) active."""
    for address, artifact in ((GAS_PRICE_ORACLE, "GasPriceOracle.sol/GasPriceOracle.json"),
                              (L1_BLOCK, "L1Block.sol/L1Block.json")):
        await d.rpc("anvil_setCode", [address, npm_artifact(f"{BEDROCK}/{artifact}").deployed_bytecode])
    await set_l1_values(d, values)
    await _as_depositor(d, GAS_PRICE_ORACLE, keccak(text="setEcotone()")[:4], "GasPriceOracle.setEcotone")
    if fjord:
        await _as_depositor(d, GAS_PRICE_ORACLE, keccak(text="setFjord()")[:4], "GasPriceOracle.setFjord")


async def install_node_interface(d: Deployer, *, l1_price_per_unit: int, l2_base_fee: int) -> None:
    """The NodeInterface stand-in at 0x..C8 with its two prices in storage slots 0 and 1."""
    art = await compile_contract(NODE_INTERFACE_SOL, "NodeInterfaceStandIn")
    await d.rpc("anvil_setCode", [NODE_INTERFACE, art.deployed_bytecode])
    for slot, value in ((0, l1_price_per_unit), (1, l2_base_fee)):
        await d.rpc("anvil_setStorageAt", [NODE_INTERFACE, hex(slot), "0x" + value.to_bytes(32, "big").hex()])
