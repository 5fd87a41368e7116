"""The [[protocols]] entry of kind "gearbox_v3"."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from keeper.config_types import COMMENTED, Address, ExecutionConfig


class GearboxV3Config(ExecutionConfig):
    """Gearbox V3 (leveraged credit accounts). An unhealthy account is partially liquidated with
    partiallyLiquidateCreditAccount in inventory mode (the wallet holds the underlying): the keeper
    picks the collateral token and the repaid amount that maximise profit while leaving the account
    at HF >= 1, as the facade requires; a full liquidation (liquidateCreditAccount) is planned too
    and the more profitable of the two kept. In flash mode the executor borrows the underlying and
    sells what it seizes on Uniswap V3."""
    EXAMPLE_NOTE: ClassVar[str] = (
        "Uncomment to watch every V3 credit manager of Gearbox on Ethereum mainnet (or list yours in "
        "credit_managers instead of address_provider):")

    kind: Literal["gearbox_v3"]
    start_block: int = Field(
        default=0, ge=0,
        description="First block to read the facade's Open/Close/Liquidate/PartiallyLiquidate logs from.")
    address_provider: Address | None = Field(
        default=None,
        description="Gearbox's AddressProviderV3: at start its CONTRACTS_REGISTER lists the credit managers "
                    "(getCreditManagers) and those reporting version 3.x are watched. Give this or credit_managers.",
        examples=["0x9ea7b04Da02a5373317D745c1571c84aaD03321D"])
    credit_managers: list[Address] | None = Field(
        default=None, min_length=1,
        description="Each CreditManagerV3, instead of address_provider; its facade, pool, underlying and price "
                    "oracle are read from it.",
        examples=[["0x0000000000000000000000000000000000000000"]], json_schema_extra=COMMENTED)
    target_hf_margin_bps: int = Field(
        default=10, ge=0, le=5_000,
        description="Aim this many basis points above HF 1 after a partial liquidation (the facade requires HF >= 1 "
                    "and interest accrues between simulation and inclusion).")
    seize_slippage_bps: int = Field(
        default=10, ge=0, le=1_000,
        description="minSeizedAmount = the predicted seizure less this many basis points (the oracle price may "
                    "move before inclusion; beyond it the facade reverts SeizedLessThanRequiredException).")
    full_liquidation: bool = Field(
        default=True, description="Also plan full liquidations (liquidateCreditAccount) and keep the more profitable "
                                  "of the partial and the full one; false: partial liquidations only, and an account "
                                  "only a full liquidation can resolve is reported, not sent.")

    incremental: bool = Field(
        default=True,
        description="Mirror credit accounts incrementally: debt records, balances and quotas kept locally and re-read "
                    "only for accounts named in the block's logs, health computed with the credit manager's maths "
                    "from prices and interest indexes read once per block, liquidatable ones confirmed on chain "
                    "(false: every account's calcDebtAndCollateral read every block).")
    resync_interval_blocks: int = Field(
        default=300, ge=1,
        description="Every this many blocks the incremental mirror reads every account's calcDebtAndCollateral, "
                    "compares it with its own, logs and counts each mismatch and re-reads those accounts.")

    chain_read_tokens: list[Address] = Field(
        default_factory=list,
        description="Collateral tokens whose balance can change without a Transfer log (rebasing, e.g. stETH): the "
                    "incremental mirror does not compute an account with one of them enabled but reads its "
                    "calcDebtAndCollateral on chain every block.",
        examples=[["0xae7ab96520DE3A18E5e111B5EaAb095312D7fE84"]], json_schema_extra=COMMENTED)

    @model_validator(mode="after")
    def _one_source_of_credit_managers(self) -> GearboxV3Config:
        if (self.address_provider is None) == (self.credit_managers is None):
            which = "both" if self.address_provider is not None else "neither"
            raise ValueError(f"give exactly one of address_provider (Gearbox's AddressProviderV3) and "
                             f"credit_managers (a list of CreditManagerV3 addresses), not {which}")
        return self
