"""The canonical Multicall3 runtime at its canonical address on the local chain.

A plain Anvil has no code there. The runtime is read from the `MultiCall3Code` constant of
@eth-optimism/contracts-bedrock's Preinstalls.sol (no multicall package ships the canonical code),
checked against the canonical code hash, and set with anvil_setCode."""
from __future__ import annotations

import re

from eth_utils import keccak

from keeper.chain.multicall import MULTICALL3
from keeper_devnet.deploy import Deployer
from keeper_devnet.solc import NODE_MODULES

CANONICAL_CODEHASH = "0xd5c15df687b16f2ff992fc8d767b4216323184a2bbc6ee2f9c398c318e770891"
PREINSTALLS = NODE_MODULES / "@eth-optimism" / "contracts-bedrock" / "src" / "libraries" / "Preinstalls.sol"


def canonical_runtime() -> bytes:
    m = re.search(r'MultiCall3Code\s*=\s*hex"([0-9a-fA-F]+)"', PREINSTALLS.read_text())
    if not m:
        raise RuntimeError(f"MultiCall3Code not found in {PREINSTALLS}")
    code = bytes.fromhex(m.group(1))
    if "0x" + keccak(code).hex() != CANONICAL_CODEHASH:
        raise RuntimeError("Multicall3 runtime in the package does not have the canonical code hash")
    return code


async def install_multicall3(d: Deployer) -> str:
    await d.rpc("anvil_setCode", [MULTICALL3, "0x" + canonical_runtime().hex()])
    return MULTICALL3
