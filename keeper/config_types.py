"""Building blocks of the config models: strict models, addresses, 32-byte ids, and the fields every
[[protocols]] entry has. Each protocol's own model (keeper/protocols/<kind>/config.py) extends
ProtocolConfig.

Every field has a ``description`` (the comment above it in config.example.toml, which is generated
from the models) and, where the default is not the value to show, ``examples=[value]``; fields
marked ``json_schema_extra=COMMENTED`` appear commented out in the example."""
from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from eth_utils import is_checksum_address, is_hex_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.functional_validators import AfterValidator

from keeper.secrets import KEYLIKE as _KEYLIKE

# The value is never repeated in a message: it may be a private key put in the wrong place.
KEY_REFUSED = ("looks like a private key (64 hex digits): refused, and not shown; a key goes in the environment "
               "variable that signer.private_key_env names, or in a keystore")


def _address(v: str) -> str:
    if isinstance(v, str) and _KEYLIKE.fullmatch(v.strip()):
        raise ValueError(KEY_REFUSED)
    if not isinstance(v, str) or not is_hex_address(v):
        raise ValueError(f"not a valid address: {v!r}")
    if v != v.lower() and v != "0x" + v[2:].upper() and not is_checksum_address(v):
        raise ValueError(f"bad EIP-55 checksum in address {v!r}")
    return to_checksum_address(v)


Address = Annotated[str, AfterValidator(_address)]


def _bytes32(v: str) -> str:
    if not isinstance(v, str) or not v.startswith("0x") or len(v) != 66:
        raise ValueError(f"not a 0x-prefixed 32-byte hex id: {v!r}")
    try:
        bytes.fromhex(v[2:])
    except ValueError:
        raise ValueError(f"not a 0x-prefixed 32-byte hex id: {v!r}") from None
    return v.lower()


Bytes32 = Annotated[str, AfterValidator(_bytes32)]


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(v: str) -> str:
    # The message never repeats the value: it may be a private key put in the wrong place.
    if _KEYLIKE.fullmatch(v) or not _ENV_NAME.fullmatch(v):
        raise ValueError("must be the NAME of an environment variable (letters, digits, _), never a secret itself")
    return v


EnvName = Annotated[str, AfterValidator(_env_name)]

COMMENTED: dict[str, Any] = {"commented": True}  # json_schema_extra: shown commented out in the example

NAME_DESCRIPTION = "Labels this entry in logs and reports; unique in the config (default: the kind)."


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProtocolConfig(Strict):
    """Fields of every [[protocols]] entry; ``kind`` selects the protocol (its Literal in the
    subclass), ``name`` defaults to the kind and must be unique in the config.

    The class docstring introduces the protocol's table in the example config; EXAMPLE_NOTE ends
    that introduction, and EXAMPLE_ENABLED leaves the table uncommented there."""
    EXAMPLE_NOTE: ClassVar[str] = ""
    EXAMPLE_ENABLED: ClassVar[bool] = False

    kind: str
    name: str = Field(default="", description=NAME_DESCRIPTION)
    start_block: int = Field(default=0, ge=0, description="First block whose logs discovery reads.")

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name") and "kind" in data:
            return {**data, "name": data["kind"]}
        return data


class ExecutionConfig(ProtocolConfig):
    """A [[protocols]] entry whose liquidations can also be paid with flash liquidity through the
    keeper's LiquidationExecutor (the seized collateral sold on Uniswap V3: needs the [swap] table)."""
    execution: Literal["inventory", "flash"] = Field(
        default="inventory",
        description="How liquidations are paid. \"inventory\": the wallet pays each liquidation and keeps what "
                    "it seizes; \"flash\": the executor borrows the repayment inside the transaction, sells the "
                    "collateral on Uniswap V3, repays, and the owner keeps the profit in the repaid token (the "
                    "wallet needs no token).")
    executor: Address | None = Field(
        default=None, description="The LiquidationExecutor owned by the signer (`keeper executor deploy` prints it); "
                                  "needed by execution = \"flash\".",
        examples=["0x..."], json_schema_extra=COMMENTED)

    @model_validator(mode="after")
    def _executor_for_flash(self) -> ExecutionConfig:
        if self.execution == "flash" and self.executor is None:
            raise ValueError('execution = "flash" needs executor: the LiquidationExecutor address '
                             "(deploy one with `keeper executor deploy`)")
        return self
