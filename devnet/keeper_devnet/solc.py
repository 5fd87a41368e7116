"""Offline Solidity compilation with the pinned solcjs (npm), cached by input hash.

Sources are given as import paths (``contracts/Foo.sol`` in this repository or
``@pkg/...`` under node_modules). The standard-JSON output is cached in ``.cache/solc`` keyed by
the hash of the full input (sources' contents, settings, compiler), so a second run compiles nothing.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
CACHE = ROOT / ".cache" / "solc"
_SCRIPT = Path(__file__).with_name("solc_compile.js")
_MEMO: dict[str, dict] = {}  # input hash -> output, for this process (callers need no caches of their own)


class CompileError(RuntimeError):
    pass


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list
    bytecode: str  # creation code, 0x-prefixed, may hold link placeholders
    deployed_bytecode: str
    link_references: dict


def resolve_source(import_path: str) -> Path:
    for base in (ROOT, NODE_MODULES):
        p = base / import_path
        if p.exists():
            return p
    raise CompileError(f"source not found: {import_path}")


def _read_sources(paths: list[str]) -> dict[str, dict]:
    return {p: {"content": resolve_source(p).read_text()} for p in paths}


def _all_sources_hash(output_sources: dict, first: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(output_sources):
        try:
            h.update(name.encode() + b"\0" + resolve_source(name).read_bytes())
        except CompileError:
            h.update(name.encode())
    h.update(json.dumps(first, sort_keys=True).encode())
    return h.hexdigest()


async def compile_standard_json(
    sources: list[str],
    *,
    compiler: str = "solc",
    optimizer_runs: int = 200,
    evm_version: str = "shanghai",
    via_ir: bool = False,
    bytecode_hash: str | None = None,
    remappings: list[str] | None = None,
) -> dict:
    """Compile ``sources`` (import paths) and return the solc standard-JSON output.

    ``remappings`` are solc's ``prefix=target`` import remappings (e.g. a package imported under a
    name installed under an npm alias); they are part of the input, hence of the cache key."""
    settings: dict = {
        "optimizer": {"enabled": True, "runs": optimizer_runs},
        "evmVersion": evm_version,
        "viaIR": via_ir,
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode", "evm.deployedBytecode"]}},
    }
    if bytecode_hash:
        settings["metadata"] = {"bytecodeHash": bytecode_hash}
    if remappings:
        settings["remappings"] = list(remappings)
    std_input = {"language": "Solidity", "sources": _read_sources(sources), "settings": settings}
    version = json.loads((NODE_MODULES / compiler / "package.json").read_text())["version"]
    key = hashlib.sha256(
        json.dumps(std_input, sort_keys=True).encode() + version.encode()
    ).hexdigest()
    if key in _MEMO:  # compiled (or read from the disk cache) earlier in this process
        return _MEMO[key]
    CACHE.mkdir(parents=True, exist_ok=True)
    cached = CACHE / f"{key}.json"
    if cached.exists():
        out = json.loads(cached.read_text())
        # Imports are resolved by the compiler, so check that none of them changed either.
        if out.get("_imports_hash") == _all_sources_hash(out["sources"], std_input["settings"]):
            _MEMO[key] = out
            return out
    proc = await asyncio.create_subprocess_exec(
        "node", str(_SCRIPT), compiler,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await proc.communicate(json.dumps(std_input).encode())
    if proc.returncode != 0:
        raise CompileError(f"solcjs failed: {stderr.decode()[-2000:]}")
    out = json.loads(stdout)
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("\n".join(e.get("formattedMessage", e["message"]) for e in errors))
    out["_imports_hash"] = _all_sources_hash(out["sources"], std_input["settings"])
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(cached)
    _MEMO[key] = out
    return out


def artifact(output: dict, source: str, name: str) -> Artifact:
    c = output["contracts"][source][name]
    return Artifact(
        name=name,
        abi=c["abi"],
        bytecode="0x" + c["evm"]["bytecode"]["object"],
        deployed_bytecode="0x" + c["evm"]["deployedBytecode"]["object"],
        link_references=c["evm"]["bytecode"].get("linkReferences", {}),
    )


async def compile_contract(source: str, name: str, **kw) -> Artifact:
    return artifact(await compile_standard_json([source], **kw), source, name)
