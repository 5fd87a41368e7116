"""Perennial's published ABIs: @perennial/sdk (a dev dependency, 0.0.3-beta.6) ships dist/abi/*.abi.js,
CommonJS modules exporting each contract's ABI (MarketAbi, OracleAbi, KeeperOracleAbi, ...); node
reads them (nothing else of the sdk is loaded)."""
from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from typing import Any

from keeper_devnet.solc import NODE_MODULES

SDK_PACKAGE = "@perennial/sdk"
SDK_ABI_DIR = NODE_MODULES / "@perennial" / "sdk" / "dist" / "abi"
Abi = list[dict[str, Any]]

_DUMP = """
const fs = require('fs'), path = require('path');
const dir = process.argv[1], out = {};
for (const f of fs.readdirSync(dir)) {
  if (!f.endsWith('.abi.js')) continue;
  const m = require(path.join(dir, f));
  for (const [k, v] of Object.entries(m)) if (k.endsWith('Abi')) out[k.slice(0, -3)] = v;
}
process.stdout.write(JSON.stringify(out));
"""


def sdk_version() -> str:
    return json.loads((SDK_ABI_DIR.parents[1] / "package.json").read_text())["version"]


@lru_cache(maxsize=1)
def sdk_abis() -> dict[str, Abi]:
    """Contract name (Market, MarketFactory, Oracle, OracleFactory, KeeperOracle, KeeperFactory,
    GasOracle, ...) -> its ABI as the sdk publishes it."""
    if not SDK_ABI_DIR.is_dir():
        raise RuntimeError(f"{SDK_PACKAGE} is not installed ({SDK_ABI_DIR} missing): run ./scripts/setup (npm ci)")
    proc = subprocess.run(["node", "-e", _DUMP, str(SDK_ABI_DIR)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"reading {SDK_ABI_DIR} failed: {proc.stderr[-2000:]}")
    out: dict[str, Abi] = json.loads(proc.stdout)
    return out
