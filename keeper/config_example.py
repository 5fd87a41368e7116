"""config.example.toml, written from the config models: each field's description is the comment
above it, its value the field's example (or else its default). Optional fields marked COMMENTED are
commented out; every protocol's table but those marked EXAMPLE_ENABLED is commented out whole
("# [[protocols]]" ... up to a blank line), introduced by the model's docstring.

``keeper config example`` prints it; scripts/gen_config_example.py writes config.example.toml.
"""
from __future__ import annotations

import inspect
import json
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from keeper.chain.relay import RelayConfig
from keeper.config import Config, KeeperConfig, PullOracleConfig, SendConfig, SignerConfig, StoreConfig
from keeper.config_types import ProtocolConfig
from keeper.observe.config import MonitorConfig
from keeper.protocols.registry import protocols
from keeper.swap.config import FlashConfig, SwapConfig

WIDTH = 100

HEADER = """\
# Liquidation keeper configuration. Unknown keys are errors; every amount is checked at load.
# Run:  keeper run --config config.toml [--dry-run]     One-shot table:  keeper scan --config config.toml
# Any key can be set from the environment instead, over this file: KEEPER_<TABLE>__<KEY> (e.g.
# KEEPER_CHAIN__RPC_URL, KEEPER_PROTOCOLS__0__START_BLOCK: list entries by index); KEEPER_CONFIG may
# name this file. Generated from the config models' descriptions (keeper config example).
"""


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | Decimal):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str | Path):
        return json.dumps(str(v))
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    raise TypeError(f"no TOML form for {v!r}")


def comment(text: str, prefix: str = "# ") -> list[str]:
    return textwrap.wrap(" ".join(text.split()), WIDTH - len(prefix), initial_indent=prefix,
                         subsequent_indent=prefix, break_on_hyphens=False)


def _value(model: type[BaseModel], name: str, info: FieldInfo) -> Any:
    if info.examples:
        return info.examples[0]
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    if info.default is PydanticUndefined or info.default is None:
        raise ValueError(f"{model.__name__}.{name}: give an example value (examples=[...]) for the config example")
    return info.default


def field_lines(model: type[BaseModel], *, kind: str | None = None) -> list[str]:
    """``# description`` + ``key = value`` for every field of ``model``."""
    out: list[str] = []
    for name, info in model.model_fields.items():
        if name == "kind" and kind is not None:
            out.append(f'kind = "{kind}"')
            continue
        if not info.description:
            raise ValueError(f"{model.__name__}.{name} has no description")
        value = kind if name == "name" and not info.examples and kind is not None else _value(model, name, info)
        out += comment(info.description)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        out.append(("# " if extra.get("commented") else "") + f"{name} = {toml_value(value)}")
    return out


def _table(header: str, intro: str, lines: list[str], *, enabled: bool) -> list[str]:
    out = comment(intro)
    if enabled:
        return [*out, header, *lines]
    return [*out, "# " + header, *("# " + line for line in lines)]


def _doc(model: type[BaseModel]) -> str:
    return inspect.cleandoc(model.__doc__ or "")


def example_toml() -> str:
    parts = [HEADER.rstrip("\n")]
    for name, model in (("chain", Config.model_fields["chain"].annotation),
                        ("signer", SignerConfig), ("keeper", KeeperConfig), ("send", SendConfig),
                        ("store", StoreConfig), ("monitor", MonitorConfig)):
        assert isinstance(model, type) and issubclass(model, BaseModel)
        parts.append("\n".join(_table(f"[{name}]", _doc(model), field_lines(model), enabled=True)))
    parts.append("\n".join(comment(Config.model_fields["protocols"].description or "")))
    for p in protocols().values():
        cfg: type[ProtocolConfig] = p.config
        (kind,) = get_args(cfg.model_fields["kind"].annotation)
        intro = f"{_doc(cfg)} {cfg.EXAMPLE_NOTE}".strip()
        parts.append("\n".join(_table("[[protocols]]", intro, field_lines(cfg, kind=kind),
                                      enabled=cfg.EXAMPLE_ENABLED)))
    needs = [k for k, p in protocols().items() if p.needs_pull_oracle]
    intro = f"{_doc(PullOracleConfig)} Needed by: {', '.join(needs)}."
    parts.append("\n".join(_table("[pull_oracle]", intro, field_lines(PullOracleConfig), enabled=False)))
    parts.append("\n".join(_table("[swap]", _doc(SwapConfig), field_lines(SwapConfig), enabled=False)))
    parts.append("\n".join(_table("[flash]", _doc(FlashConfig), field_lines(FlashConfig), enabled=False)))
    parts.append("\n".join(_table("[relay]", _doc(RelayConfig), field_lines(RelayConfig), enabled=False)))
    return "\n\n".join(parts) + "\n"
