"""The keeper's TOML configuration: parsed with tomllib into typed, validated pydantic models.

Every error names the file, the key and the problem; unknown keys are errors.
"""
from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from keeper.chain.multicall import MULTICALL3
from keeper.config_types import Address, Bytes32, Strict
from keeper.errors import ConfigError
from keeper.protocols.registry import protocols
from keeper.swap.config import FlashConfig, SwapConfig


class ChainConfig(Strict):
    rpc_url: str
    chain_id: int = Field(gt=0)
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    log_chunk_blocks: int = Field(default=5_000, gt=0)
    multicall_address: Address = MULTICALL3
    # How the chain charges for the L1 data a transaction publishes (keeper.chain.l1fee): "none" (an L1,
    # or a chain without such a fee), "op_stack" (Base, Optimism: GasPriceOracle.getL1Fee) or
    # "arbitrum" (NodeInterface.gasEstimateL1Component).
    l2: Literal["none", "op_stack", "arbitrum"] = "none"
    max_request_bytes: int = Field(
        default=1 << 20, ge=16 << 10,
        description="largest JSON-RPC request (one POST: a call or a batch) the keeper sends, in bytes; "
                    "batches and multicalls are split to fit, and a node's 'too large' answer lowers it")
    max_batch: int = Field(
        default=100, ge=1,
        description="most requests in one JSON-RPC batch (providers cap it too; a refusal lowers it)")

    @field_validator("rpc_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {v!r}")
        return v


class SignerConfig(Strict):
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


class KeeperConfig(Strict):
    mode: Literal["live", "dry-run"] = "live"
    min_profit_usd: Decimal = Field(ge=0)
    max_gas_price_gwei: Decimal = Field(gt=0)
    max_priority_fee_gwei: Decimal = Field(ge=0)
    native_usd_feed: Address  # Chainlink feed pricing the native token, to value gas
    gas_safety_margin: Decimal = Field(default=Decimal("1.3"), ge=1)  # gas limit = simulated x this + 30k
    record_file: Path | None = None  # JSON lines of every outcome, appended






class StoreConfig(Strict):
    """The durable state: accounts index, checkpoints, mirror state and transaction journal."""
    path: str = Field(
        default="keeper.db",
        description="SQLite file, relative to the config file's folder; \":memory:\" keeps nothing (tests)")
    synchronous: Literal["normal", "full"] = Field(
        default="normal",
        description="\"normal\" survives a crash of the keeper; \"full\" also a power cut, at one disk sync "
                    "per write")
    history_blocks: int = Field(
        default=256, ge=1,
        description="recent (number, hash) pairs kept per checkpoint stream to find a reorg's fork point")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must name a file (or \":memory:\")")
        return v


class PullOracleConfig(Strict):
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






def _protocol_union() -> Any:
    """The [[protocols]] entry: one model per registered protocol, chosen by ``kind``."""
    models = tuple(p.config for p in protocols().values())
    return Annotated[Union[models], Field(discriminator="kind")]  # type: ignore[valid-type]


PROTOCOL_KINDS = tuple(protocols())
AnyProtocolConfig = _protocol_union()


class Config(Strict):
    chain: ChainConfig
    signer: SignerConfig
    keeper: KeeperConfig
    protocols: list[AnyProtocolConfig] = Field(min_length=1)  # type: ignore[valid-type]
    pull_oracle: PullOracleConfig | None = None  # needed by protocols with pull-oracle prices
    store: StoreConfig = StoreConfig()
    swap: SwapConfig | None = None  # Uniswap V3 routing: needed by entries with execution = "flash"
    flash: FlashConfig = FlashConfig()  # flash lenders besides Uniswap V3 pools

    @model_validator(mode="after")
    def _unique_names(self):
        names = [p.name for p in self.protocols]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"protocol names must be unique, repeated: {sorted(dup)}")
        reg = protocols()
        needs = [p.name for p in self.protocols if reg[p.kind].needs_pull_oracle]
        if needs and self.pull_oracle is None:
            raise ValueError(f"{', '.join(needs)} commit pull-oracle prices: add a [pull_oracle] table")
        flash = [p.name for p in self.protocols if getattr(p, "execution", "inventory") == "flash"]
        if flash and self.swap is None:
            raise ValueError(f"{', '.join(flash)} sell seized collateral on Uniswap V3 (execution = \"flash\"): "
                             "add a [swap] table")
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
    if cfg.store.path != ":memory:" and not Path(cfg.store.path).is_absolute():
        cfg = cfg.model_copy(update={"store": cfg.store.model_copy(
            update={"path": str((path.parent / cfg.store.path).resolve())})})
    return cfg
