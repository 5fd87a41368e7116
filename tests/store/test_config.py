"""[store] in the config: the path is relative to the config file, ":memory:" stays, and the store
the config names opens there."""
from __future__ import annotations

import pytest

from keeper.config import load_config
from keeper.errors import ConfigError
from keeper.store import open_store

BASE = """
[chain]
rpc_url = "http://127.0.0.1:8545"
chain_id = 31337
[signer]
private_key_env = "KEEPER_PRIVATE_KEY"
[keeper]
min_profit_usd = 1
max_gas_price_gwei = 100
max_priority_fee_gwei = 2
native_usd_feed = "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419"
[[protocols]]
kind = "aave_v3"
addresses_provider = "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"
"""


async def test_store_path_is_next_to_the_config_file(tmp_path):
    (tmp_path / "conf").mkdir()
    cfg_file = tmp_path / "conf" / "keeper.toml"
    cfg_file.write_text(BASE)
    cfg = load_config(cfg_file)
    assert cfg.store.path == str(tmp_path / "conf" / "keeper.db")
    assert (cfg.chain.max_request_bytes, cfg.chain.max_batch) == (1 << 20, 100)
    store = await open_store(cfg.store)
    try:
        await store.add_accounts("aave_v3", {"0xA": 1})
    finally:
        await store.close()
    assert (tmp_path / "conf" / "keeper.db").exists()


def test_memory_and_absolute_paths_are_kept(tmp_path):
    f = tmp_path / "k.toml"
    f.write_text(BASE + '[store]\npath = ":memory:"\n')
    assert load_config(f).store.path == ":memory:"
    f.write_text(BASE + f'[store]\npath = "{tmp_path / "db" / "x.db"}"\nsynchronous = "full"\n')
    cfg = load_config(f)
    assert (cfg.store.path, cfg.store.synchronous) == (str(tmp_path / "db" / "x.db"), "full")


@pytest.mark.parametrize("table, message", [
    ('[store]\nsynchronous = "sometimes"\n', "store.synchronous"),
    ('[store]\nhistory_blocks = 0\n', "store.history_blocks"),
    ('[store]\npath = " "\n', "store.path: must name a file"),
    ('[store]\nfile = "x.db"\n', "store.file: unknown key"),
])
def test_bad_store_tables_are_named(tmp_path, table, message):
    f = tmp_path / "k.toml"
    f.write_text(BASE + table)
    with pytest.raises(ConfigError, match=message):
        load_config(f)


def test_bad_request_limits_are_named(tmp_path):
    f = tmp_path / "k.toml"
    f.write_text(BASE.replace('chain_id = 31337', 'chain_id = 31337\nmax_request_bytes = 1000'))
    with pytest.raises(ConfigError, match="chain.max_request_bytes"):
        load_config(f)
