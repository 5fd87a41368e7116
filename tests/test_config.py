"""Config loading: the example file is generated from the models' descriptions and is valid; each
kind of mistake names the file, the key and the problem, and the CLI exits 2 without sending
anything."""
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from keeper.cli import main
from keeper.config import PROTOCOL_KINDS, Config, load_config
from keeper.config_example import example_toml
from keeper.errors import ConfigError
from keeper.protocols.registry import protocols
from tests.helpers.config import uncomment_examples

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "keeper.toml"
    p.write_text(text)
    return p


def test_example_config_is_valid():
    cfg = load_config(EXAMPLE)
    assert cfg.keeper.mode == "live"
    assert cfg.protocols[0].kind == "aave_v3" and cfg.protocols[0].close_factor_rules == "v3.3"
    assert str(cfg.keeper.min_profit_usd) == "5"




def test_example_is_generated_from_the_config_models():
    assert EXAMPLE.read_text() == example_toml(), "config.example.toml is stale: run scripts/gen_config_example.py"


def _models(model: type[BaseModel]) -> list[type[BaseModel]]:
    out = [model]
    for f in model.model_fields.values():
        for sub in getattr(f.annotation, "__args__", ()) + (f.annotation,):
            if isinstance(sub, type) and issubclass(sub, BaseModel) and sub not in out:
                out += _models(sub)
    return out


def test_every_config_field_is_described_and_in_the_example():
    models = _models(Config) + [p.config for p in protocols().values()]
    assert len(models) >= 5 + len(PROTOCOL_KINDS)
    text = EXAMPLE.read_text()
    for m in models:
        for name, f in m.model_fields.items():
            if m is Config or name == "kind":
                continue  # the top-level tables, and the kind tag every protocol table starts with
            assert f.description, f"{m.__name__}.{name} has no description"
            assert re.search(rf"^(# )*{name} = ", text, re.M), f"{m.__name__}.{name} is missing from the example"
            first_words = " ".join(f.description.split()[:4])
            assert first_words in " ".join(line.lstrip("# ") for line in text.splitlines()), first_words


def test_config_example_command_prints_the_example(capsys):
    assert main(["config", "example"]) == 0
    assert capsys.readouterr().out == EXAMPLE.read_text()


def test_every_commented_example_table_is_valid(tmp_path):
    cfg = load_config(write(tmp_path, uncomment_examples(EXAMPLE.read_text())))
    assert {p.kind for p in cfg.protocols} == set(PROTOCOL_KINDS)
    assert cfg.pull_oracle is not None and cfg.pull_oracle.source == "hermes"


def test_perennial_without_pull_oracle_is_named(tmp_path):
    text = uncomment_examples(EXAMPLE.read_text())
    start = text.index("\n[pull_oracle]\n")
    end = text.find("\n\n", start)
    text = text[:start] + (text[end:] if end >= 0 else "\n")
    with pytest.raises(ConfigError, match=r"\(top level\): perennial_v2 commit pull-oracle prices: add a \[pull_oracle\]"):
        load_config(write(tmp_path, text))


def test_perennial_needs_markets_or_market_factory(tmp_path):
    text = uncomment_examples(EXAMPLE.read_text())
    markets = 'markets = ["0x0000000000000000000000000000000000000000"]\n'
    assert text.count(markets) == 1
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text.replace(markets, "markets = []\n")))
    assert re.search(r"protocols\[\d+\]: give markets \(a non-empty list of Market addresses\) or market_factory",
                     str(e.value)), str(e.value)
    factory = "0x1F98431c8aD98523631AE4a59f267346ea31F984"
    cfg = load_config(write(tmp_path, text.replace(markets, f'market_factory = "{factory.lower()}"\n')))
    (p,) = [p for p in cfg.protocols if p.kind == "perennial_v2"]
    assert p.markets == [] and p.market_factory == factory


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('rpc_url = "http://127.0.0.1:8545"\n', ""), r"chain\.rpc_url: missing key"),
    (lambda t: t.replace('addresses_provider = "0x2f39', 'addresses_provider = "0x2f3Z'),
     r"protocols\[0\]\.addresses_provider: not a valid address"),
    (lambda t: t.replace("addresses_provider = \"0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e\"",
                         "addresses_provider = \"0x2F39d218133AFaB8F2B819B1066c7E434Ad94E9e\""),
     r"protocols\[0\]\.addresses_provider: bad EIP-55 checksum"),
    (lambda t: t.replace("[keeper]\n", "[keeper]\nmin_proft_usd = 3\n"), r"keeper\.min_proft_usd: unknown key"),
    (lambda t: t.replace("min_profit_usd = 5", "min_profit_usd = -5"),
     r"keeper\.min_profit_usd: .*greater than or equal to 0"),
    (lambda t: t.replace("max_gas_price_gwei = 100", "max_gas_price_gwei = 0"),
     r"keeper\.max_gas_price_gwei: .*greater than 0"),
    (lambda t: t.replace('mode = "live"', 'mode = "yolo"'), r"keeper\.mode: "),
    (lambda t: t.replace('close_factor_rules = "v3.3"', 'close_factor_rules = "v4"'),
     r"protocols\[0\]\.close_factor_rules"),
    (lambda t: t.replace('private_key_env = "KEEPER_PRIVATE_KEY"', ""), r"signer: .*exactly one of"),
    (lambda t: t + "\n[extra]\nx = 1\n", r"extra: unknown key"),
    (lambda t: t.replace("chain_id = 31337", "chain_id = 31337x"), r"not valid TOML"),
])
def test_bad_config_is_named(tmp_path, edit, message):
    path = write(tmp_path, edit(EXAMPLE.read_text()))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value)
    assert re.search(message, str(e.value)), str(e.value)


def test_cli_exits_2_on_bad_config(tmp_path, capsys):
    path = write(tmp_path, EXAMPLE.read_text().replace("min_profit_usd = 5", "min_profit_usd = -1"))
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "keeper.min_profit_usd" in err and str(path) in err


def test_cli_exits_2_on_missing_key_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KEEPER_PRIVATE_KEY", raising=False)
    path = write(tmp_path, EXAMPLE.read_text())
    assert main(["run", "--config", str(path)]) == 2
    assert "KEEPER_PRIVATE_KEY is not set" in capsys.readouterr().err


def test_cli_exits_2_on_a_bad_key_and_never_prints_it(tmp_path, capsys, monkeypatch):
    bad = "0x" + "zz" * 32
    monkeypatch.setenv("KEEPER_PRIVATE_KEY", bad)
    path = write(tmp_path, EXAMPLE.read_text())
    assert main(["scan", "--config", str(path)]) == 2
    out = capsys.readouterr()
    assert "does not hold a valid private key" in out.err
    assert bad not in out.err + out.out


def test_cli_missing_file(tmp_path, capsys):
    assert main(["scan", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "file not found" in capsys.readouterr().err
