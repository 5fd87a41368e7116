"""Gearbox V3 in the local world: the real @gearbox-protocol/core-v3 contracts compiled with
Gearbox's settings, the governance-trio stand-in and a Pyth forwarder (Solidity beside world.py)."""
from __future__ import annotations

from typing import Any

from keeper_devnet.protocols.gearbox_v3.world import add_gearbox_to_world as add_to_world  # noqa: F401


async def keeper_abis() -> dict[str, list[dict[str, Any]]]:
    """The contracts' own ABIs from the one compile job world.py makes, plus gearbox_errors: every
    custom error of the compile jobs (a facade call reverts with errors of the credit manager,
    oracle, pool and 1inch SafeERC20 too)."""
    from keeper_devnet.abi_extract import subset
    from keeper_devnet.protocols.gearbox_v3.world import all_errors, gearbox_abis, pyth_artifacts
    abis = await gearbox_abis()
    abis |= {name: a.abi for name, a in (await pyth_artifacts()).items()}
    wanted = {
        "gearbox_credit_manager_v3": ("CreditManagerV3", [
            "pool", "underlying", "creditFacade", "priceOracle", "poolQuotaKeeper", "fees", "collateralTokensCount",
            "getTokenByMask", "liquidationThresholds", "calcDebtAndCollateral", "isLiquidatable", "version"]),
        "gearbox_credit_facade_v3": ("CreditFacadeV3", [
            "creditManager", "underlying", "debtLimits", "paused", "expirable", "partiallyLiquidateCreditAccount",
            "liquidateCreditAccount", "lossPolicy", "OpenCreditAccount", "CloseCreditAccount",
            "LiquidateCreditAccount", "PartiallyLiquidateCreditAccount"]),
        "gearbox_price_oracle_v3": ("PriceOracleV3", ["getPrice", "priceFeedParams"]),
        "gearbox_pool_quota_keeper_v3": ("PoolQuotaKeeperV3", ["getQuota"]),
        # Updatable feeds (@gearbox-protocol/oracles-v3 PythPriceFeed, compiled with the same settings):
        # `updatable` tells a pull feed, `updatePrice` is the on-demand update the keeper batches.
        "gearbox_pyth_price_feed": ("PythPriceFeed", ["updatable", "updatePrice", "priceFeedId", "pyth", "token"]),
        # The inner calls of a full liquidation's multicall, and the loss policy the facade asks
        # before a liquidation with bad debt.
        "gearbox_credit_facade_v3_multicall": ("ICreditFacadeV3Multicall", [
            "onDemandPriceUpdates", "addCollateral", "withdrawCollateral"]),
        "gearbox_loss_policy_v3": ("AliasedLossPolicyV3", ["isLiquidatableWithLoss", "accessMode", "checksEnabled"]),
        # Discovery from the address provider (address_provider in the config): the package's
        # IAddressProvider and IContractsRegister, the calls the real AddressProviderV3 and
        # ContractsRegister answer.
        "gearbox_address_provider_v3": ("IAddressProvider", ["getAddressOrRevert"]),
        "gearbox_contracts_register": ("IContractsRegister", ["getCreditManagers"]),
    }
    out = {name: subset(abis[contract], names, contract, errors=False) for name, (contract, names) in wanted.items()}
    # liquidateCreditAccount is overloaded: keep the 4-argument form (with lossPolicyData), the one
    # V3.1 implements (the 3-argument one forwards to it with empty data).
    out["gearbox_credit_facade_v3"] = [e for e in out["gearbox_credit_facade_v3"]
                                       if e.get("name") != "liquidateCreditAccount" or len(e["inputs"]) == 4]
    out["gearbox_errors"] = await all_errors()
    return out
