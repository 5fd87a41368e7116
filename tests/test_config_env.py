"""Config from the environment: KEEPER_<TABLE>__<KEY> variables over the file (list entries by
index, JSON for lists and tables), KEEPER_CONFIG naming the file, errors naming the variable,
secrets never accepted as values; the global flags after the subcommand."""
from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest

from keeper import cli
from keeper.config import load_config
from keeper.config_env import env_overrides
from keeper.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"
MORPHO = "0xBBBBBbbBBb9cC5e90e3b3Af64bdAF62C37EEFFCb"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
FEED = "0x8fFfFfd4AfB6115b954Bd326cbe7B4BA576818f6"
KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # Anvil's public dev key #1


def load(env: dict[str, str], path: Path = EXAMPLE):
    return load_config(path, env)


def error(env: dict[str, str], path: Path = EXAMPLE) -> str:
    with pytest.raises(ConfigError) as e:
        load(env, path)
    return str(e.value)


def test_variables_override_the_file():
    cfg = load({"KEEPER_CHAIN__RPC_URL": "https://node.example:8545", "KEEPER_CHAIN__CHAIN_ID": "1",
                "KEEPER_KEEPER__MIN_PROFIT_USD": "12.5", "KEEPER_KEEPER__MODE": "dry-run",
                "KEEPER_PROTOCOLS__0__START_BLOCK": "19000000",
                "keeper_chain__poll_interval_seconds": "0.25"})  # names are case-insensitive
    assert cfg.chain.rpc_url == "https://node.example:8545" and cfg.chain.chain_id == 1
    assert cfg.keeper.min_profit_usd == Decimal("12.5") and cfg.keeper.mode == "dry-run"
    assert cfg.protocols[0].start_block == 19_000_000 and cfg.chain.poll_interval_seconds == 0.25
    untouched = load({})
    assert cfg.protocols[0].model_dump(exclude={"start_block"}) == untouched.protocols[0].model_dump(
        exclude={"start_block"})
    assert cfg.keeper.max_gas_price_gwei == untouched.keeper.max_gas_price_gwei == 100


def test_a_new_list_entry_and_json_values():
    cfg = load({"KEEPER_PROTOCOLS__1__KIND": "morpho_blue", "KEEPER_PROTOCOLS__1__MORPHO": MORPHO,
                "KEEPER_PROTOCOLS__1__MARKETS": '["0x' + "ab" * 32 + '"]',
                "KEEPER_PROTOCOLS__1__USD_FEEDS": f'{{"{USDC}": "{FEED}"}}'})
    aave, morpho = cfg.protocols
    assert aave.kind == "aave_v3" and morpho.kind == "morpho_blue" and morpho.name == "morpho_blue"
    assert morpho.markets == ["0x" + "ab" * 32] and morpho.usd_feeds == {USDC: FEED}


def test_a_whole_config_from_variables_and_a_list_item_by_index(tmp_path):
    minimal = tmp_path / "minimal.toml"
    minimal.write_text("")
    env = {"KEEPER_CHAIN__RPC_URL": "http://127.0.0.1:8545", "KEEPER_CHAIN__CHAIN_ID": "31337",
           "KEEPER_SIGNER__PRIVATE_KEY_ENV": "MY_KEY", "KEEPER_KEEPER__MIN_PROFIT_USD": "1",
           "KEEPER_KEEPER__MAX_GAS_PRICE_GWEI": "50", "KEEPER_KEEPER__MAX_PRIORITY_FEE_GWEI": "1",
           "KEEPER_KEEPER__NATIVE_USD_FEED": FEED,
           "KEEPER_PROTOCOLS__0__KIND": "gearbox_v3", "KEEPER_PROTOCOLS__0__CREDIT_MANAGERS__0": MORPHO,
           "KEEPER_PROTOCOLS__0__CREDIT_MANAGERS__1": USDC}
    cfg = load(env, minimal)
    assert cfg.signer.private_key_env == "MY_KEY" and cfg.protocols[0].credit_managers == [MORPHO, USDC]


@pytest.mark.parametrize("env, message", [
    ({"KEEPER_KEEPER__MIN_PROFIT_USD": "-1"},
     r"^KEEPER_KEEPER__MIN_PROFIT_USD: keeper\.min_profit_usd: .*greater than or equal to 0"),
    ({"KEEPER_CHAIN__RPC_ULR": "http://x"}, r"^KEEPER_CHAIN__RPC_ULR: chain\.rpc_ulr: unknown key"),
    ({"KEEPER_CHIAN__RPC_URL": "http://x"}, r"^KEEPER_CHIAN__RPC_URL: chian: unknown key"),
    ({"KEEPER_PROTOCOLS__0__ADDRESSES_PROVIDER": "0x2f3Z"},
     r"^KEEPER_PROTOCOLS__0__ADDRESSES_PROVIDER: protocols\[0\]\.addresses_provider: not a valid address"),
    ({"KEEPER_PROTOCOLS__2__START_BLOCK": "1"},
     r"^KEEPER_PROTOCOLS__2__START_BLOCK: protocols has 1 entries; the next one is index 1"),
    ({"KEEPER_CHAIN__RPC_URL__HOST": "x"}, r"^KEEPER_CHAIN__RPC_URL__HOST: chain\.rpc_url is not a table"),
    ({"KEEPER_CHAIN__0": "x"}, r"^KEEPER_CHAIN__0: chain is not a list of tables"),
    ({"KEEPER_PROTOCOLS__0__USD_FEEDS": "{not json"}, r"^KEEPER_PROTOCOLS__0__USD_FEEDS: .* must be JSON"),
    ({"KEEPER_CHAIN____X": "1"}, r"^KEEPER_CHAIN____X: empty key"),
    ({"KEEPER_SIGNER__KEYSTORE": "k.json", "KEEPER_SIGNER__PASSWORD_ENV": "PW"},
     r"^\S+config\.example\.toml with KEEPER_SIGNER__KEYSTORE, KEEPER_SIGNER__PASSWORD_ENV: signer: "
     r"give exactly one of private_key_env or keystore"),
])
def test_errors_name_the_variable(env, message):
    text = error(env)
    assert re.search(message, text), text


def test_other_variables_are_not_keys():
    env = {"KEEPER_PRIVATE_KEY": KEY, "KEEPER_CONFIG": "elsewhere.toml", "KEEPER_DEVNET_PASSWORD": "x",
           "OTHER__CHAIN__RPC_URL": "x", "PATH": os.environ.get("PATH", "")}
    assert env_overrides(env) == []
    assert load(env) == load({})


def test_secrets_are_never_values():
    text = error({"KEEPER_SIGNER__PRIVATE_KEY": KEY})
    assert "KEEPER_SIGNER__PRIVATE_KEY: signer.private_key: unknown key" in text and KEY[2:] not in text
    for wrong in (KEY, KEY[2:], "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"):
        text = error({"KEEPER_SIGNER__PRIVATE_KEY_ENV": wrong})
        assert "signer.private_key_env: must be the NAME of an environment variable" in text, text
        assert wrong.removeprefix("0x") not in text


def test_a_key_in_the_file_is_refused_without_printing_it(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text(EXAMPLE.read_text().replace('private_key_env = "KEEPER_PRIVATE_KEY"', f'private_key_env = "{KEY}"'))
    text = error({}, path)
    assert f"{path}: signer.private_key_env: must be the NAME" in text and KEY[2:] not in text


def test_rpc_url_errors_do_not_echo_the_url():
    text = error({"KEEPER_CHAIN__RPC_URL": "wss://user:secret@node.example"})
    assert "got scheme 'wss'" in text and "secret" not in text


def test_keystore_from_a_variable_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = EXAMPLE.read_text().replace('private_key_env = "KEEPER_PRIVATE_KEY"\n', "")
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "k.toml"
    path.write_text(text)
    cfg = load({"KEEPER_SIGNER__KEYSTORE": "k.json", "KEEPER_SIGNER__PASSWORD_ENV": "PW"}, path)
    assert cfg.signer.keystore == tmp_path / "k.json"
    path.write_text(text.replace("[signer]\n", '[signer]\nkeystore = "k.json"\npassword_env = "PW"\n'))
    assert load({}, path).signer.keystore == tmp_path / "conf" / "k.json"  # a file's paths: relative to it


def test_keeper_config_names_the_file(tmp_path):
    path = tmp_path / "from-env.toml"
    path.write_text(EXAMPLE.read_text().replace("min_profit_usd = 5", "min_profit_usd = 7"))
    assert load_config(None, {"KEEPER_CONFIG": str(path)}).keeper.min_profit_usd == 7
    assert load_config(EXAMPLE, {"KEEPER_CONFIG": str(path)}).keeper.min_profit_usd == 5  # --config wins
    with pytest.raises(ConfigError, match="no config file: give --config FILE or set KEEPER_CONFIG"):
        load_config(None, {})


def test_cli_reads_keeper_config_and_names_the_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KEEPER_CONFIG", str(EXAMPLE))
    monkeypatch.setenv("KEEPER_KEEPER__MAX_GAS_PRICE_GWEI", "0")
    assert cli.main(["scan"]) == 2
    assert "KEEPER_KEEPER__MAX_GAS_PRICE_GWEI: keeper.max_gas_price_gwei: " in capsys.readouterr().err
    monkeypatch.delenv("KEEPER_CONFIG")
    assert cli.main(["run"]) == 2
    assert "no config file: give --config FILE or set KEEPER_CONFIG" in capsys.readouterr().err


@pytest.mark.parametrize("argv, json_lines, level", [
    (["run", "--config", "x.toml"], False, "info"),
    (["--log-json", "--log-level", "debug", "run", "--config", "x.toml"], True, "debug"),
    (["run", "--config", "x.toml", "--log-json", "--log-level", "warning"], True, "warning"),
    (["--log-level", "error", "scan", "--log-json"], True, "error"),
    (["config", "example", "--log-level", "debug"], False, "debug"),
])
def test_global_flags_before_or_after_the_subcommand(argv, json_lines, level, monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "setup_logging", lambda json_lines, level: seen.update(json_lines=json_lines, level=level))

    async def stop(args):
        return 0
    monkeypatch.setattr(cli, "_run", stop)
    monkeypatch.setattr(cli, "_scan", stop)
    monkeypatch.setattr(cli, "_config", stop)
    assert cli.main(argv) == 0
    assert seen == {"json_lines": json_lines, "level": level}
