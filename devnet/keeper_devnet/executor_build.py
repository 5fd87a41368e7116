"""Compile the keeper's LiquidationExecutor (keeper/executor/LiquidationExecutor.sol) with the pinned
solcjs into the artifact the runtime package ships (keeper/executor/LiquidationExecutor.json), so
that deploying it needs no compiler. scripts/build_executor.py writes or checks the file."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from keeper_devnet.solc import NODE_MODULES, ROOT, artifact, compile_standard_json

SOURCE = "keeper/executor/LiquidationExecutor.sol"
ARTIFACT = ROOT / "keeper" / "executor" / "LiquidationExecutor.json"
COMPILER = "solc"  # the npm package (node_modules/solc)
# Transient storage (EIP-1153) needs cancun; no metadata hash, so the bytecode depends only on the
# source and these settings.
SETTINGS: dict[str, Any] = {"optimizer_runs": 1_000, "evm_version": "cancun", "bytecode_hash": "none"}


def source_sha256() -> str:
    return hashlib.sha256((ROOT / SOURCE).read_bytes()).hexdigest()


async def build_artifact() -> dict[str, Any]:
    out = await compile_standard_json([SOURCE], compiler=COMPILER, **SETTINGS)
    art = artifact(out, SOURCE, "LiquidationExecutor")
    version = json.loads((NODE_MODULES / COMPILER / "package.json").read_text())["version"]
    return {
        "contractName": "LiquidationExecutor",
        "source": SOURCE,
        "source_sha256": source_sha256(),
        "compiler": f"solcjs {version}",
        "settings": {"optimizer": {"enabled": True, "runs": SETTINGS["optimizer_runs"]},
                     "evmVersion": SETTINGS["evm_version"], "metadata": {"bytecodeHash": "none"}},
        "abi": art.abi,
        "bytecode": art.bytecode,
    }


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1) + "\n"
