"""Hardhat-style artifacts shipped in npm packages (abi, bytecode, linkReferences), read from
node_modules at run time."""
from __future__ import annotations

import json
from functools import cache

from keeper_devnet.solc import NODE_MODULES, Artifact


def _hex(code: str) -> str:
    return code if code.startswith("0x") else "0x" + code


@cache
def npm_artifact(path: str) -> Artifact:
    """``path`` is relative to node_modules, e.g. "@aave/core-v3/artifacts/.../Pool.json"."""
    data = json.loads((NODE_MODULES / path).read_text())
    bytecode = data["bytecode"] if isinstance(data["bytecode"], str) else data["bytecode"]["object"]
    deployed = data.get("deployedBytecode", "0x")
    deployed = deployed if isinstance(deployed, str) else deployed["object"]
    return Artifact(name=data.get("contractName", path.rsplit("/", 1)[-1].removesuffix(".json")),
                    abi=data["abi"], bytecode=_hex(bytecode), deployed_bytecode=_hex(deployed),
                    link_references=data.get("linkReferences", {}))
