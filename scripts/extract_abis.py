#!/usr/bin/env python3
"""Maintainer tool: writes abis/*.json, the functions and events the keeper uses, taken verbatim
from the protocols' published artifacts in node_modules (run after `npm ci`).

The committed files are subsets (one entry per function/event the keeper calls or decodes), so the
keeper ships the real declarations without copying the packages' files.
"""
import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NM = ROOT / "node_modules"
sys.path.insert(0, str(ROOT))

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
    "pyth": ("@pythnetwork/pyth-sdk-solidity/abis/IPyth.json", [
        "getUpdateFee", "updatePriceFeeds", "parsePriceFeedUpdates", "getPriceUnsafe", "PriceFeedUpdate"]),
    "pyth_mock": ("@pythnetwork/pyth-sdk-solidity/abis/MockPyth.json", ["createPriceFeedUpdateData"]),
}


# Packages that ship sources only: compiled here with their pinned compiler (the ABI of an
# interface plus, for Morpho, the events of EventsLib, which solc 0.8.19 leaves out of the ABI).
COMPILED = {
    "MorphoBlue": ("solc_0_8_19", [
        ("@morpho-org/morpho-blue/src/interfaces/IMorpho.sol", "IMorpho"),
        ("@morpho-org/morpho-blue/src/libraries/EventsLib.sol", "EventsLib"),
    ], ["idToMarketParams", "market", "position", "liquidate", "accrueInterest",
        "CreateMarket", "Supply", "Borrow", "Repay", "SupplyCollateral", "WithdrawCollateral", "Liquidate",
        "AccrueInterest"]),
    "MorphoIrm": ("solc_0_8_19", [("@morpho-org/morpho-blue/src/interfaces/IIrm.sol", "IIrm")],
                  ["borrowRateView"]),
    "MorphoOracle": ("solc_0_8_19", [("@morpho-org/morpho-blue/src/interfaces/IOracle.sol", "IOracle")],
                     ["price"]),
    # Comet publishes no installable package: the ABI comes from the stand-in, which declares
    # Comet's functions and events with CometMainInterface / CometExtInterface's exact signatures.
    "CometMain": ("solc", [("contracts/comet/CometStandIn.sol", "CometStandIn")], [
        "baseToken", "baseTokenPriceFeed", "baseScale", "numAssets", "getAssetInfo", "storeFrontPriceFactor",
        "targetReserves", "getPrice", "getReserves", "getCollateralReserves", "quoteCollateral",
        "isLiquidatable", "borrowBalanceOf", "collateralBalanceOf", "isAbsorbPaused", "isBuyPaused",
        "absorb", "buyCollateral",
        "Withdraw", "SupplyCollateral", "WithdrawCollateral", "TransferCollateral", "AbsorbDebt",
        "AbsorbCollateral", "BuyCollateral"]),
}
# Gearbox V3 (@gearbox-protocol/core-v3 ships sources only): the contracts' own ABIs from the one
# compile job keeper.devnet.gearbox makes (Gearbox's settings, OpenZeppelin 4.9.6 remapped).
GEARBOX = {
    "gearbox_credit_manager_v3": ("CreditManagerV3", [
        "pool", "underlying", "creditFacade", "priceOracle", "poolQuotaKeeper", "fees", "collateralTokensCount",
        "getTokenByMask", "liquidationThresholds", "calcDebtAndCollateral", "isLiquidatable", "version"]),
    "gearbox_credit_facade_v3": ("CreditFacadeV3", [
        "creditManager", "underlying", "debtLimits", "paused", "expirable", "partiallyLiquidateCreditAccount",
        "OpenCreditAccount", "CloseCreditAccount", "LiquidateCreditAccount", "PartiallyLiquidateCreditAccount"]),
    "gearbox_price_oracle_v3": ("PriceOracleV3", ["getPrice", "priceFeedParams"]),
    "gearbox_pool_quota_keeper_v3": ("PoolQuotaKeeperV3", ["getQuota"]),
    # Updatable feeds (@gearbox-protocol/oracles-v3 PythPriceFeed, compiled with the same settings):
    # `updatable` tells a pull feed, `updatePrice` is the on-demand update the keeper batches.
    "gearbox_pyth_price_feed": ("PythPriceFeed", ["updatable", "updatePrice", "priceFeedId", "pyth", "token"]),
}


async def gearbox_abis() -> dict[str, list]:
    """GEARBOX subsets, plus gearbox_errors: every custom error of the compile job (a facade call
    reverts with errors of the credit manager, oracle, pool and 1inch SafeERC20 too)."""
    from keeper.devnet.gearbox import all_errors, gearbox_abis as compiled, pyth_artifacts
    abis = await compiled()
    abis |= {name: a.abi for name, a in (await pyth_artifacts()).items()}
    out = {}
    for name, (contract, names) in GEARBOX.items():
        subset = [e for e in abis[contract] if e.get("name") in names and e["type"] != "error"]
        missing = set(names) - {e["name"] for e in subset}
        if missing:
            raise SystemExit(f"{name}: {contract} lacks {sorted(missing)}")
        out[name] = subset
    out["gearbox_errors"] = await all_errors()
    return out


# Perennial V2 publishes no deployable package: its ABIs come from the stand-ins, which declare the
# Market's and the Pyth keeper oracle's functions, events and errors with the real signatures.
PERENNIAL = {
    "perennial_market": ("contracts/perennial/MarketStandIn.sol", "MarketStandIn", [
        "update", "settle", "claimFee", "positions", "locals", "pendings", "riskParameter", "oracle", "token",
        "liquidators", "OrderCreated", "FeeClaimed"]),
    "perennial_oracle": ("contracts/perennial/KeeperOracleStandIn.sol", "KeeperOracleStandIn", [
        "commit", "current", "status", "at", "next", "timeout", "parameter", "factory", "ids", "toUnderlyingId",
        "pyth", "localCallbacks", "global", "requests"]),
    # Markets found from the factory: root Factory's registry and IMarketFactory's creation event.
    "perennial_market_factory": ("contracts/perennial/MarketFactoryStandIn.sol", "MarketFactoryStandIn", [
        "instances", "markets", "InstanceRegistered", "MarketCreated"]),
}


async def perennial_abis() -> dict[str, list]:
    """PERENNIAL subsets, compiled as keeper.devnet.perennial compiles them (cancun, via-IR)."""
    from keeper.devnet.perennial import perennial_artifacts
    arts = await perennial_artifacts()
    by_source = {"MarketStandIn": arts["market"].abi, "KeeperOracleStandIn": arts["oracle"].abi,
                 "MarketFactoryStandIn": arts["factory"].abi}
    out = {}
    for name, (_src, contract, names) in PERENNIAL.items():
        subset = [e for e in by_source[contract] if e.get("name") in names]
        missing = set(names) - {e["name"] for e in subset}
        if missing:
            raise SystemExit(f"{name}: {contract} lacks {sorted(missing)}")
        out[name] = subset
    return out


# Comet declares its structs in CometCore; the stand-in declares the same structs in itself.
INTERNAL_TYPE_RENAMES = {"CometMain": ("struct CometStandIn.", "struct CometCore.")}


def load_abi(rel: str) -> list:
    data = json.loads((NM / rel).read_text())
    return data["abi"] if isinstance(data, dict) else data


async def compiled_abi(compiler: str, units: list[tuple[str, str]]) -> list:
    from keeper.devnet.solc import compile_standard_json
    out = await compile_standard_json([src for src, _ in units], compiler=compiler, evm_version="paris")
    abi: list = []
    for src, name in units:
        abi += out["contracts"][src][name]["abi"]
    return abi


def main() -> None:
    out_dir = ROOT / "abis"
    out_dir.mkdir(exist_ok=True)
    sources = {name: (rel, names, None) for name, (rel, names) in WANTED.items()}
    sources |= {name: (f"{units[0][0]} (+{len(units) - 1})", names, (compiler, units))
                for name, (compiler, units, names) in COMPILED.items()}
    for name, (rel, names, compile_spec) in sources.items():
        abi = asyncio.run(compiled_abi(*compile_spec)) if compile_spec else load_abi(rel)
        subset = [e for e in abi if e.get("name") in names]
        if name in INTERNAL_TYPE_RENAMES:
            a, b = INTERNAL_TYPE_RENAMES[name]
            subset = json.loads(json.dumps(subset).replace(a, b))
        missing = set(names) - {e["name"] for e in subset}
        if missing:
            raise SystemExit(f"{name}: {rel} lacks {sorted(missing)}")
        (out_dir / f"{name}.json").write_text(json.dumps(subset, indent=1) + "\n")
        print(f"abis/{name}.json: {len(subset)} entries from {rel}")
    for name, subset in asyncio.run(perennial_abis()).items():
        (out_dir / f"{name}.json").write_text(json.dumps(subset, indent=1) + "\n")
        print(f"abis/{name}.json: {len(subset)} entries from {PERENNIAL[name][0]} (compiled)")
    for name, subset in asyncio.run(gearbox_abis()).items():
        (out_dir / f"{name}.json").write_text(json.dumps(subset, indent=1) + "\n")
        print(f"abis/{name}.json: {len(subset)} entries from @gearbox-protocol/core-v3 (compiled)")


if __name__ == "__main__":
    main()
