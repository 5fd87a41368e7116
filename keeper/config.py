"""The keeper's TOML configuration: parsed with tomllib into typed, validated pydantic models,
with environment variables (``KEEPER_<TABLE>__<KEY>``, keeper/config_env.py) laid over the file.

Every error names the file or the variable, the key and the problem; unknown keys are errors. The
field descriptions are the comments of config.example.toml (generated: keeper/config_example.py).
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from keeper.chain.multicall import MULTICALL3
from keeper.chain.relay import RelayConfig
from keeper.config_env import CONFIG_VAR, Override, apply_overrides, env_overrides
from keeper.config_types import COMMENTED, KEY_REFUSED, Address, Bytes32, EnvName, ProtocolConfig, Strict
from keeper.errors import ConfigError
from keeper.observe.config import MonitorConfig
from keeper.protocols.registry import protocols
from keeper.secrets import looks_like_key
from keeper.swap.config import FlashConfig, SwapConfig


class ChainConfig(Strict):
    """The node the keeper talks to."""
    rpc_url: str = Field(
        description="JSON-RPC endpoint of the node the keeper reads from and sends to (http or https). A URL "
                    "with credentials is better set from the environment (KEEPER_CHAIN__RPC_URL).",
        examples=["http://127.0.0.1:8545"])
    chain_id: int = Field(
        gt=0, description="The chain the keeper must find there; it refuses to start on any other "
                          "(1 = Ethereum mainnet).", examples=[31337])
    rpc_urls: list[str] = Field(
        default_factory=list,
        description="More endpoints of the same chain, in priority order after rpc_url: the keeper switches to "
                    "the next when the one in use fails repeatedly, stops producing blocks or lags behind, and "
                    "goes back to the first when it is well again.",
        examples=[["https://eth.example-provider.io/v3/KEY"]], json_schema_extra=COMMENTED)
    failover_errors: int = Field(
        default=3, ge=1, description="Consecutive failed requests (no answer or a malformed one) that make the "
                                     "keeper switch to the next endpoint.")
    failover_stale_seconds: float = Field(
        default=30.0, gt=0, description="An endpoint whose head has not moved for this long while another's "
                                        "has is left for the other.")
    failover_lag_blocks: int = Field(
        default=3, ge=1, description="An endpoint this many blocks behind another is left for the other.")
    failover_recheck_seconds: float = Field(
        default=60.0, gt=0, description="How often the keeper checks whether a better-placed endpoint is well "
                                        "again and goes back to it.")
    poll_interval_seconds: float = Field(default=1.0, gt=0,
                                         description="How often to ask the node for a new block, in seconds "
                                                     "(when there is no WebSocket, or while it is down).")
    ws_url: str | None = Field(
        default=None,
        description="WebSocket endpoint (ws:// or wss://) for eth_subscribe newHeads: new blocks are seen as they "
                    "arrive instead of by polling; if it fails or drops, the keeper polls rpc_url and retries the "
                    "stream. Anvil and most nodes serve it on the HTTP port (ws://127.0.0.1:8545).",
        examples=["ws://127.0.0.1:8545"], json_schema_extra=COMMENTED)
    log_chunk_blocks: int = Field(
        default=5_000, gt=0,
        description="Block range of one eth_getLogs request during discovery (halved automatically if the node "
                    "refuses).")
    multicall_address: Address = Field(
        default=MULTICALL3,
        description="Multicall3 used for batched reads (the canonical address on almost every chain).")
    l2: Literal["none", "op_stack", "arbitrum"] = Field(
        default="none",
        description='How the chain charges for the L1 data a transaction publishes (keeper.chain.l1fee): "none" '
                    '(an L1), "op_stack" (Base, Optimism: GasPriceOracle.getL1Fee) or "arbitrum" '
                    "(NodeInterface.gasEstimateL1Component).")
    max_request_bytes: int = Field(
        default=1 << 20, ge=16 << 10,
        description="Largest JSON-RPC request (one POST: a call or a batch) the keeper sends, in bytes; "
                    "batches and multicalls are split to fit, and a node's 'too large' answer lowers it.")
    request_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300,
        description="Per JSON-RPC request: a node that has not answered by then is asked again (a few times, "
                    "then the step fails and the next block tries again).")
    max_batch: int = Field(
        default=100, ge=1,
        description="Most requests in one JSON-RPC batch (providers cap it too; a refusal lowers it).")

    @field_validator("rpc_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)

    @field_validator("rpc_urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        return [_http_url(u) for u in v]

    @field_validator("ws_url")
    @classmethod
    def _ws_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("ws://", "wss://")):
            raise ValueError(f"must be a ws:// or wss:// URL, got scheme {urlsplit(v).scheme or '(none)'!r}")
        return v

    @property
    def urls(self) -> list[str]:
        """Every endpoint in priority order (rpc_url first, repeats dropped)."""
        return list(dict.fromkeys([self.rpc_url, *self.rpc_urls]))


def _http_url(v: str) -> str:
    if not v.startswith(("http://", "https://")):
        # Only the scheme: the rest of the URL may hold credentials.
        raise ValueError(f"must be an http:// or https:// URL, got scheme {urlsplit(v).scheme or '(none)'!r}")
    return v


class SignerConfig(Strict):
    """The key the keeper signs with: exactly one source, never the key itself."""
    private_key_env: EnvName | None = Field(
        default=None,
        description="Exactly one key source. Either the NAME of an environment variable holding the private key "
                    "(never the key itself: a key in this file is not accepted)...",
        examples=["KEEPER_PRIVATE_KEY"])
    keystore: Path | None = Field(
        default=None,
        description="...or an encrypted JSON keystore (a path relative to this file) and the variable holding "
                    "its password:",
        examples=["keeper.keystore.json"], json_schema_extra=COMMENTED)
    password_env: EnvName | None = Field(
        default=None, description="The NAME of the environment variable holding the keystore's password.",
        examples=["KEEPER_KEYSTORE_PASSWORD"], json_schema_extra=COMMENTED)
    address: Address | None = Field(
        default=None, description="Optional: the address the key must belong to; checked at start-up.",
        examples=["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"], json_schema_extra=COMMENTED)

    @model_validator(mode="after")
    def _one_source(self) -> SignerConfig:
        if (self.private_key_env is None) == (self.keystore is None):
            raise ValueError("give exactly one of private_key_env or keystore")
        if self.keystore is not None and not self.password_env:
            raise ValueError("keystore needs password_env")
        return self


class KeeperConfig(Strict):
    """What the keeper does and the limits it keeps."""
    mode: Literal["live", "dry-run"] = Field(
        default="live",
        description='"live" sends transactions; "dry-run" does everything up to and including the simulation '
                    "and sends nothing (also: keeper run --dry-run).")
    min_profit_usd: Decimal = Field(
        ge=0, description="Skip any liquidation whose expected profit after gas is below this, in USD.",
        examples=[5])
    max_gas_price_gwei: Decimal = Field(
        gt=0, description="Send nothing while the expected gas price (next base fee + tip) is above this, and never "
                          "sign a maxFeePerGas above it (replacements and cancels included), in gwei.",
        examples=[100])
    max_priority_fee_gwei: Decimal = Field(
        ge=0, description="The highest tip (maxPriorityFeePerGas) the keeper offers, in gwei.", examples=[2])
    native_usd_feed: Address = Field(
        description="Chainlink feed of the native token in USD (ETH/USD on Ethereum), used to price gas.",
        examples=["0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419"])
    gas_safety_margin: Decimal = Field(default=Decimal("1.3"), ge=1,
                                       description="Gas limit sent = simulated gas x this + 30,000.")
    record_file: Path | None = Field(
        default=None,
        description="Optional: append every outcome (sent, confirmed, reverted, skipped and why) as JSON lines. "
                    "A sent plan is recorded as pending, then again with its final status (one attempt id).",
        examples=["keeper-outcomes.jsonl"], json_schema_extra=COMMENTED)
    min_native_balance: Decimal = Field(
        default=Decimal("0.01"), ge=0,
        description="The wallet's native balance (ETH) needed to start; below it at run time, one warning (and "
                    "another only after it recovered).")
    failure_backoff_blocks: int = Field(
        default=3, ge=0,
        description="Blocks an account is left alone after its plan failed (simulation revert, send refused, "
                    "reverted or dropped).")
    shutdown_seconds: float = Field(
        default=3.0, gt=0, le=60,
        description="On SIGTERM / SIGINT: how long the step in progress may take to finish before it is cancelled "
                    "(what is in flight stays in the journal for the next start). A second Ctrl-C exits at once.")


class SendConfig(Strict):
    """How transactions are priced, replaced and cancelled (keeper.max_gas_price_gwei caps every
    maxFeePerGas signed; keeper.max_priority_fee_gwei caps the first tip)."""
    replace_after_blocks: int = Field(
        default=3, ge=1,
        description="A transaction not mined after this many blocks is replaced at its nonce with higher fees.")
    fee_bump_percent: Decimal = Field(
        default=Decimal("12.5"), ge=10, le=200,
        description="Raise of both fees in a replacement, in percent (nodes refuse less than 10-12.5%).")
    fee_budget_share: Decimal = Field(
        default=Decimal("0.5"), gt=0, le=1,
        description="Share of a plan's expected profit (before gas) its transactions may spend on gas: caps the "
                    "fee per gas of replacements along with max_gas_price_gwei.")
    tip_percentile: float = Field(
        default=50.0, ge=0, le=100,
        description="The tip offered: this percentile of the priority fees paid in recent blocks (eth_feeHistory).")
    tip_floor_gwei: Decimal = Field(default=Decimal("0"), ge=0,
                                    description="The lowest tip offered, in gwei.")
    tip_profit_share: Decimal = Field(
        default=Decimal("0"), ge=0, le=1,
        description="Offer at least this share of a plan's expected profit as tip (over its simulated gas); 0: off. "
                    "Never above max_priority_fee_gwei.")


class StoreConfig(Strict):
    """The durable state: accounts index, checkpoints, mirror state and transaction journal."""
    path: str = Field(
        default="keeper.db",
        description="SQLite file of the durable state (accounts found, each protocol's checkpoint, the mirrored "
                    "positions, the journal of every transaction), relative to this file; \":memory:\" keeps "
                    "nothing (tests).")
    synchronous: Literal["normal", "full"] = Field(
        default="normal",
        description="\"normal\" survives a crash of the keeper; \"full\" also a power cut, at one disk sync "
                    "per write.")
    history_blocks: int = Field(
        default=256, ge=1,
        description="Recent (number, hash) pairs kept per checkpoint stream to find a reorg's fork point.")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must name a file (or \":memory:\")")
        return v


class PullOracleConfig(Strict):
    """Signed pull-oracle prices (Pyth), for the protocols that commit them."""
    source: Literal["hermes", "mock_pyth"] = Field(
        default="hermes",
        description='"hermes": a Pyth Hermes-style HTTP service (GET {url}/v2/updates/price/latest); "mock_pyth": '
                    "a devnet MockPyth whose updates are built on chain from Chainlink feeds (keeper devnet writes "
                    "that form itself).")
    url: str | None = Field(default=None, description="The price service (source hermes).",
                            examples=["https://hermes.pyth.network"])
    timeout_seconds: float = Field(
        default=5.0, gt=0,
        description="Per request; transient failures (timeouts, 5xx, 429) are retried `retries` times.")
    retries: int = Field(default=3, ge=0, description="Retries of a transient failure.")
    pyth: Address | None = Field(
        default=None,
        description="The IPyth contract whose getUpdateFee prices an update (mock_pyth when unset); adapters "
                    "that know their protocol's Pyth contract use it instead. Pyth on Arbitrum shown.",
        examples=["0xff1a0f4744e8582DF1aE09D5611b887B6a12925C"])
    mock_pyth: Address | None = Field(
        default=None, description="source mock_pyth: the MockPyth contract.",
        examples=["0x0000000000000000000000000000000000000000"], json_schema_extra=COMMENTED)
    mock_feeds: dict[Bytes32, Address] = Field(
        default_factory=dict,
        description="source mock_pyth: Pyth feed id -> the Chainlink feed whose answer the update carries.",
        json_schema_extra=COMMENTED)
    mock_conf_bps: int = Field(
        default=0, ge=0, le=10_000,
        description="source mock_pyth: confidence interval of the updates, in basis points of the price.",
        json_schema_extra=COMMENTED)

    @model_validator(mode="after")
    def _source(self) -> PullOracleConfig:
        if self.source == "hermes" and not self.url:
            raise ValueError("source 'hermes' needs url")
        if self.source == "mock_pyth" and self.mock_pyth is None:
            raise ValueError("source 'mock_pyth' needs mock_pyth (the MockPyth address)")
        return self


def _protocol_union() -> Any:
    """The [[protocols]] entry: one model per registered protocol, chosen by ``kind``."""
    models = tuple(p.config for p in protocols().values())
    return Annotated[Union[models], Field(discriminator="kind")]  # noqa: UP007 (a runtime tuple of models)


PROTOCOL_KINDS = tuple(protocols())
if TYPE_CHECKING:
    AnyProtocolConfig = ProtocolConfig  # each adapter narrows to its own model
else:
    AnyProtocolConfig = _protocol_union()


class Config(Strict):
    chain: ChainConfig
    signer: SignerConfig
    keeper: KeeperConfig
    protocols: list[AnyProtocolConfig] = Field(
        min_length=1,
        description="One [[protocols]] table per market watched. `name` must be unique; it labels logs and reports.")
    pull_oracle: PullOracleConfig | None = Field(
        default=None, description="Signed pull-oracle prices, needed by the protocols that commit them.")
    store: StoreConfig = Field(
        default_factory=StoreConfig,
        description="The durable state (accounts index, checkpoints, mirror state, transaction journal).")
    relay: RelayConfig | None = Field(
        default=None, description="Private submission through a relay (default: the public mempool).")
    monitor: MonitorConfig = Field(
        default_factory=MonitorConfig,
        description="Health endpoint, Prometheus metrics, heartbeat and alerts.")
    swap: SwapConfig | None = Field(
        default=None,
        description="Uniswap V3 routing of seized collateral, needed by entries with execution = \"flash\".")
    flash: FlashConfig = Field(
        default_factory=FlashConfig, description="Flash lenders besides Uniswap V3 pools (execution = \"flash\").")
    send: SendConfig = Field(default_factory=SendConfig, description="Transaction pricing and replacement.")

    @model_validator(mode="after")
    def _no_keys(self) -> Config:
        found = _keylike_fields(self, ())
        if found:
            raise ValueError(f"{', '.join(_loc(_path(w)) for w in found)}: {KEY_REFUSED}")
        return self

    @model_validator(mode="after")
    def _tips(self) -> Config:
        if self.send.tip_floor_gwei > self.keeper.max_priority_fee_gwei:
            raise ValueError("send.tip_floor_gwei is above keeper.max_priority_fee_gwei")
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
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


def _takes_bytes32(info: FieldInfo) -> bool:
    """A field whose values may be 32-byte ids (market ids, Pyth feed ids): 64 hex digits are expected there."""
    return "_bytes32" in repr(info.annotation) or any("_bytes32" in repr(m) for m in info.metadata)


def _keylike_fields(v: Any, where: tuple[int | str, ...]) -> list[tuple[int | str, ...]]:
    """Where a value shaped like a private key sits in a field that does not take 32-byte ids."""
    if isinstance(v, BaseModel):
        return [w for name, info in type(v).model_fields.items() if not _takes_bytes32(info)
                for w in _keylike_fields(getattr(v, name), (*where, name))]
    if isinstance(v, str | Path):
        return [where] if looks_like_key(str(v)) else []
    if isinstance(v, list | tuple):
        return [w for i, x in enumerate(v) for w in _keylike_fields(x, (*where, i))]
    if isinstance(v, dict):
        return [w for k, x in v.items() for w in _keylike_fields(k, where) + _keylike_fields(x, (*where, str(k)))]
    return []


def _path(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The error location without the discriminator tags pydantic adds to union members."""
    out: list[int | str] = []
    for part in loc:
        if part in PROTOCOL_KINDS and out and isinstance(out[-1], int):
            continue
        out.append(part)
    return tuple(out)


def _loc(path: tuple[int | str, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(top level)"


def _message(err: ErrorDetails) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "missing key"
    return err["msg"].removeprefix("Value error, ")


def config_path(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """The config file: ``path`` (--config) or else the one KEEPER_CONFIG names."""
    env = os.environ if environ is None else environ
    if path is not None:
        return Path(path)
    if env.get(CONFIG_VAR):
        return Path(env[CONFIG_VAR])
    raise ConfigError(f"no config file: give --config FILE or set {CONFIG_VAR}")


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the file (``path``, else KEEPER_CONFIG), lay the KEEPER_<TABLE>__<KEY> variables of
    ``environ`` (default: the process environment) over it, validate."""
    env = os.environ if environ is None else environ
    path = config_path(path, env)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    overrides = env_overrides(env)
    try:
        cfg = Config.model_validate(apply_overrides(raw, overrides))
    except ValidationError as e:
        raise ConfigError("\n".join(_describe(err, path, raw, overrides) for err in e.errors())) from None
    keystore = cfg.signer.keystore
    if keystore is not None and not keystore.is_absolute():
        from_env = any(o.path == ("signer", "keystore") for o in overrides)
        base = Path.cwd() if from_env else path.parent  # a file's paths are relative to the file
        cfg = cfg.model_copy(update={"signer": cfg.signer.model_copy(update={"keystore": (base / keystore).resolve()})})
    if cfg.store.path != ":memory:" and not Path(cfg.store.path).is_absolute():
        base = path.parent if path is not None else Path.cwd()
        cfg = cfg.model_copy(update={"store": cfg.store.model_copy(
            update={"path": str((base / cfg.store.path).resolve())})})
    return cfg


def _in_file(raw: Any, where: tuple[int | str, ...]) -> bool:
    for part in where:
        listed = isinstance(part, int) and isinstance(raw, list) and part < len(raw)
        if not (listed or (isinstance(part, str) and isinstance(raw, dict) and part in raw)):
            return False
        raw = raw[part]
    return True


def _describe(err: ErrorDetails, path: Path, raw: dict[str, Any], overrides: list[Override]) -> str:
    """``<file or variable>: <key>: <problem>``; a key set by a variable names the variable."""
    where = _path(tuple(err["loc"]))
    source = next((o.var for o in overrides if where[:len(o.path)] == o.path), None)
    if source is None:  # a table some variables wrote into: theirs alone, or the file's too
        inside = [o.var for o in overrides if o.path[:len(where)] == where]
        source = ", ".join(inside) if inside and not _in_file(raw, where) else (
            f"{path} with {', '.join(inside)}" if inside else str(path))
    return f"{source}: {_loc(where)}: {_message(err)}"
