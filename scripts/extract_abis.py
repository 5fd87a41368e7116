#!/usr/bin/env python3
"""Maintainer tool: writes abis/*.json, the functions and events the keeper uses, taken verbatim
from the protocols' published artifacts in node_modules (run after `npm ci`).

The committed files are subsets (one entry per function/event the keeper calls or decodes), so the
keeper ships the real declarations without copying the packages' files.
"""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NM = ROOT / "node_modules"

WANTED = {
    "AaveV3Pool": ("@aave/core-v3/artifacts/contracts/interfaces/IPool.sol/IPool.json", [
        "liquidationCall", "getUserAccountData", "getReservesList", "getReserveData",
        "getUserConfiguration", "getUserEMode", "getEModeCategoryData", "flashLoanSimple",
        "Supply", "Borrow", "Repay", "Withdraw", "LiquidationCall"]),
    "AaveV3PoolAddressesProvider": (
        "@aave/core-v3/artifacts/contracts/interfaces/IPoolAddressesProvider.sol/IPoolAddressesProvider.json",
        ["getPool", "getPriceOracle"]),
    "AaveOracle": ("@aave/core-v3/artifacts/contracts/interfaces/IAaveOracle.sol/IAaveOracle.json", [
        "getAssetPrice", "getAssetsPrices", "getSourceOfAsset", "BASE_CURRENCY", "BASE_CURRENCY_UNIT"]),
    "ERC20": ("@openzeppelin/contracts/build/contracts/ERC20.json", [
        "balanceOf", "allowance", "approve", "decimals", "symbol", "Transfer"]),
    "ChainlinkAggregatorV3": (
        "@chainlink/contracts/abi/v0.8/shared/AggregatorV3Interface.abi.json",
        ["latestRoundData", "decimals", "description"]),
}


def load_abi(rel: str) -> list:
    data = json.loads((NM / rel).read_text())
    return data["abi"] if isinstance(data, dict) else data


def main() -> None:
    out_dir = ROOT / "abis"
    out_dir.mkdir(exist_ok=True)
    for name, (rel, names) in WANTED.items():
        abi = load_abi(rel)
        subset = [e for e in abi if e.get("name") in names]
        missing = set(names) - {e["name"] for e in subset}
        if missing:
            raise SystemExit(f"{name}: {rel} lacks {sorted(missing)}")
        (out_dir / f"{name}.json").write_text(json.dumps(subset, indent=1) + "\n")
        print(f"abis/{name}.json: {len(subset)} entries from {rel}")


if __name__ == "__main__":
    main()
