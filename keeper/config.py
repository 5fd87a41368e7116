"""The keeper's TOML configuration: parsed with tomllib into typed, validated pydantic models.

Every error names the file, the key and the problem; unknown keys are errors.
"""
from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal, Union

from eth_utils import is_checksum_address, is_hex_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.functional_validators import AfterValidator

from keeper.chain.multicall import MULTICALL3
from keeper.errors import ConfigError


def _address(v: str) -> str:
    if not isinstance(v, str) or not is_hex_address(v):
        raise ValueError(f"not a valid address: {v!r}")
    if v != v.lower() and v != "0x" + v[2:].upper() and not is_checksum_address(v):
        raise ValueError(f"bad EIP-55 checksum in address {v!r}")
    return to_checksum_address(v)


Address = Annotated[str, AfterValidator(_address)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChainConfig(_Strict):
    rpc_url: str
    chain_id: int = Field(gt=0)
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    log_chunk_blocks: int = Field(default=5_000, gt=0)
    multicall_address: Address = MULTICALL3

    @field_validator("rpc_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {v!r}")
        return v


class SignerConfig(_Strict):
    private_key_env: str | None = None
    keystore: Path | None = None
    password_env: str | None = None
    address: Address | None = None

    @model_validator(mode="after")
    def _one_source(self):
        if (self.private_key_env is None) == (self.keystore is None):
            raise ValueError("give exactly one of private_key_env or keystore")
        if self.keystore is not None and not self.password_env:
            raise ValueError("keystore needs password_env")
        return self


class KeeperConfig(_Strict):
    mode: Literal["live", "dry-run"] = "live"
    min_profit_usd: Decimal = Field(ge=0)
    max_gas_price_gwei: Decimal = Field(gt=0)
    max_priority_fee_gwei: Decimal = Field(ge=0)
    native_usd_feed: Address  # Chainlink feed pricing the native token, to value gas
    gas_safety_margin: Decimal = Field(default=Decimal("1.3"), ge=1)  # gas limit = simulated x this + 30k
    record_file: Path | None = None  # JSON lines of every outcome, appended


class AaveV3Config(_Strict):
    kind: Literal["aave_v3"]
    name: str = "aave_v3"
    addresses_provider: Address  # Pool and oracle are read from it
    start_block: int = Field(default=0, ge=0)
    close_factor_rules: Literal["v3.3", "v3.0"] = "v3.3"


class CompoundV3Config(_Strict):
    kind: Literal["compound_v3"]
    name: str = "compound_v3"
    comet: Address  # the market's Comet proxy (e.g. cUSDCv3)
    start_block: int = Field(default=0, ge=0)
    # Absorb liquidatable accounts even when buying their collateral cannot pay for the gas
    # (Comet pays absorbers nothing; the protocol's health is the only gain).
    absorb_without_profit: bool = False
    buy_slippage_bps: int = Field(default=50, ge=0, le=10_000)  # buyCollateral minAmount below the quote
    max_absorb_batch: int = Field(default=10, ge=1)  # accounts per absorb() call


def _bytes32(v: str) -> str:
    if not isinstance(v, str) or not v.startswith("0x") or len(v) != 66:
        raise ValueError(f"not a 0x-prefixed 32-byte hex id: {v!r}")
    try:
        bytes.fromhex(v[2:])
    except ValueError:
        raise ValueError(f"not a 0x-prefixed 32-byte hex id: {v!r}") from None
    return v.lower()


Bytes32 = Annotated[str, AfterValidator(_bytes32)]


class MorphoBlueConfig(_Strict):
    kind: Literal["morpho_blue"]
    name: str = "morpho_blue"
    morpho: Address  # the Morpho Blue singleton
    start_block: int = Field(default=0, ge=0)
    # Market ids to watch; empty = every market found in CreateMarket logs from start_block.
    markets: list[Bytes32] = []
    # token -> Chainlink USD feed, to value seized collateral and repaid loan tokens in USD
    # (Morpho's own oracles price collateral in loan-token units only).
    usd_feeds: dict[Address, Address] = {}


class PullOracleConfig(_Strict):
    """Where signed pull-oracle prices (Pyth) come from."""
    # "hermes": a Pyth Hermes-style HTTP price service at url; "mock_pyth": a devnet MockPyth whose
    # updates are built on chain from the Chainlink feeds named in mock_feeds (feed id -> feed).
    source: Literal["hermes", "mock_pyth"] = "hermes"
    url: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0)
    retries: int = Field(default=3, ge=0)
    mock_pyth: Address | None = None
    mock_feeds: dict[Bytes32, Address] = {}
    # The IPyth contract whose getUpdateFee prices an update (hermes); mock_pyth is used when unset.
    # Adapters that know their protocol's Pyth contract pass it themselves.
    pyth: Address | None = None
    # Confidence interval of MockPyth updates, in basis points of the price (mock_pyth only).
    mock_conf_bps: int = Field(default=0, ge=0, le=10_000)

    @model_validator(mode="after")
    def _source(self):
        if self.source == "hermes" and not self.url:
            raise ValueError("source 'hermes' needs url")
        if self.source == "mock_pyth" and self.mock_pyth is None:
            raise ValueError("source 'mock_pyth' needs mock_pyth (the MockPyth address)")
        return self


class PerennialV2Config(_Strict):
    kind: Literal["perennial_v2"]
    name: str = "perennial_v2"
    markets: list[Address] = []  # Market contracts to watch
    # The MarketFactory: every market it created (its creation logs from start_block) is watched
    # too, and each of `markets` must be one of its instances. Give markets, this, or both.
    market_factory: Address | None = None
    start_block: int = Field(default=0, ge=0)
    dsu_usd_feed: Address | None = None  # Chainlink feed for DSU; None = valued at 1 USD
    # Claim accrued liquidation rewards once they exceed this many times the claim's gas cost.
    claim_min_gas_multiple: Decimal = Field(default=Decimal("2"), ge=0)

    @model_validator(mode="after")
    def _market_source(self):
        if not self.markets and self.market_factory is None:
            raise ValueError("give markets (a non-empty list of Market addresses) or market_factory")
        return self


class GearboxV3Config(_Strict):
    kind: Literal["gearbox_v3"]
    name: str = "gearbox_v3"
    credit_managers: list[Address] = Field(min_length=1)  # each CreditManagerV3 (facade read from it)
    start_block: int = Field(default=0, ge=0)
    # Partial liquidation must leave the account at HF >= 1; aim this far above it (basis points)
    # so that interest accrued between simulation and inclusion cannot make it revert.
    target_hf_margin_bps: int = Field(default=10, ge=0, le=5_000)
    # minSeizedAmount = the predicted seizure less this (basis points): the oracle price may move
    # between simulation and inclusion; beyond it the facade reverts SeizedLessThanRequiredException.
    seize_slippage_bps: int = Field(default=10, ge=0, le=1_000)


PROTOCOL_KINDS = ("aave_v3", "compound_v3", "morpho_blue", "perennial_v2", "gearbox_v3")
PULL_ORACLE_KINDS = ("perennial_v2",)  # kinds that need the [pull_oracle] table

ProtocolConfig = Annotated[
    Union[AaveV3Config, CompoundV3Config, MorphoBlueConfig, PerennialV2Config, GearboxV3Config],
    Field(discriminator="kind"),
]


class Config(_Strict):
    chain: ChainConfig
    signer: SignerConfig
    keeper: KeeperConfig
    protocols: list[ProtocolConfig] = Field(min_length=1)
    pull_oracle: PullOracleConfig | None = None  # needed by protocols with pull-oracle prices

    @model_validator(mode="after")
    def _unique_names(self):
        names = [p.name for p in self.protocols]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"protocol names must be unique, repeated: {sorted(dup)}")
        needs = [p.name for p in self.protocols if p.kind in PULL_ORACLE_KINDS]
        if needs and self.pull_oracle is None:
            raise ValueError(f"{', '.join(needs)} commit pull-oracle prices: add a [pull_oracle] table")
        return self


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in PROTOCOL_KINDS and out.endswith("]"):
            continue  # the discriminator tag pydantic adds to union locations
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _message(err: dict) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "missing key"
    msg = err["msg"].removeprefix("Value error, ")
    return msg


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as e:
        lines = [f"{path}: {_loc(err['loc'])}: {_message(err)}" for err in e.errors()]
        raise ConfigError("\n".join(lines)) from None
    if cfg.signer.keystore is not None and not cfg.signer.keystore.is_absolute():
        cfg = cfg.model_copy(update={"signer": cfg.signer.model_copy(
            update={"keystore": (path.parent / cfg.signer.keystore).resolve()})})
    return cfg
