"""Chain presets and `keeper init`: every preset's addresses are EIP-55 checksummed and sourced, its
names unique, its chain id the chain's, and the file `keeper init` writes loads with load_config."""
from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from typing import Any

import pytest
from eth_utils import to_checksum_address

from keeper.cli import main
from keeper.config import load_config
from keeper.errors import ConfigError
from keeper.presets import CHAINS, load_preset, render, select

CHAIN_IDS = {"ethereum": 1, "base": 8453, "arbitrum": 42161}
L2 = {"ethereum": "none", "base": "op_stack", "arbitrum": "arbitrum"}
HEX40 = re.compile(r"0x[0-9a-fA-F]{40}(?![0-9a-fA-F])")


def strings(obj: Any) -> list[str]:
    """Every string inside a preset (dataclass fields, dict keys and values, lists)."""
    if isinstance(obj, str):
        return [obj]
    if is_dataclass(obj):
        return [s for f in fields(obj) for s in strings(getattr(obj, f.name))]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in strings(k) + strings(v)]
    if isinstance(obj, (list, tuple)):
        return [s for v in obj for s in strings(v)]
    return []


def test_chains_are_the_three_presets():
    assert set(CHAINS) == set(CHAIN_IDS)


@pytest.mark.parametrize("chain", CHAINS)
def test_preset_addresses_are_checksummed_and_sourced(chain):
    preset = load_preset(chain)
    assert preset.chain == chain and preset.chain_id == CHAIN_IDS[chain] and preset.l2 == L2[chain]
    addresses = [a for s in strings(preset) for a in HEX40.findall(s)]
    assert len(addresses) > 5
    for a in addresses:
        assert a == to_checksum_address(a), f"{chain}: {a} is not EIP-55 checksummed"
        assert int(a, 16) != 0, f"{chain}: zero address"
    for s in (preset.multicall, preset.native_usd_feed, preset.pyth):
        assert s.source.strip()
    names = [m.name for m in preset.markets]
    assert len(names) == len(set(names)), f"{chain}: repeated names {names}"
    for m in preset.markets:
        assert m.source.strip() and m.fields.get("start_block", 0) > 0, f"{chain}/{m.name}"
    # A protocol is either in the preset or said why not.
    listed = {m.kind for m in preset.markets} | {o.kind for o in preset.omitted}
    from keeper.protocols.registry import protocols
    assert listed == set(protocols()), f"{chain}: {set(protocols()) - listed} neither present nor explained"


@pytest.mark.parametrize("chain", CHAINS)
def test_rendered_preset_loads_and_comments_every_address(chain, tmp_path):
    preset = load_preset(chain)
    text = render(preset, list(preset.markets), rpc_url="https://node.example/rpc")
    path = tmp_path / f"{chain}.toml"
    path.write_text(text)
    cfg = load_config(path)
    assert cfg.chain.chain_id == CHAIN_IDS[chain] and cfg.chain.l2 == L2[chain]
    assert cfg.keeper.mode == "dry-run"
    assert cfg.keeper.native_usd_feed == preset.native_usd_feed.value
    assert [p.name for p in cfg.protocols] == [m.name for m in preset.markets]
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if HEX40.search(line) and not line.startswith("#"):
            # the key's own comment, or the table's "Source:" comment a few lines up
            above = lines[max(0, i - 4):i]
            assert any(a.startswith("#") for a in above), f"{chain}: no source comment above {line!r}"


def test_protocol_selection():
    preset = load_preset("arbitrum")
    assert {m.kind for m in select(preset, ["aave_v3", "perennial_v2"])} == {"aave_v3", "perennial_v2"}
    assert [m.name for m in select(preset, ["gearbox_v3"])] == ["gearbox_v3"]
    with pytest.raises(ConfigError, match=r"--protocols: gearbox_v3 has no base preset: Gearbox V3 is not deployed"):
        select(load_preset("base"), ["gearbox_v3"])
    with pytest.raises(ConfigError, match=r"unknown protocol 'aave_v4'"):
        select(preset, ["aave_v4"])


def test_init_writes_a_loadable_file_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "keeper.toml"
    assert main(["init", "--chain", "arbitrum", "--protocols", "aave_v3,perennial_v2", "--out", str(out),
                 "--rpc-url", "https://arb.example/rpc"]) == 0
    cfg = load_config(out)
    assert cfg.chain.chain_id == 42161 and cfg.chain.rpc_url == "https://arb.example/rpc"
    assert [p.kind for p in cfg.protocols] == ["aave_v3", "perennial_v2"]
    assert cfg.pull_oracle is not None and cfg.pull_oracle.pyth == "0xff1a0f4744e8582DF1aE09D5611b887B6a12925C"
    assert "wrote" in capsys.readouterr().out
    before = out.read_text()
    assert main(["init", "--chain", "base", "--out", str(out)]) == 2
    assert "exists: pass --force" in capsys.readouterr().err
    assert out.read_text() == before
    assert main(["init", "--chain", "base", "--out", str(out), "--force"]) == 0
    assert load_config(out).chain.chain_id == 8453
    assert [p.name for p in tmp_path.iterdir()] == ["keeper.toml"]  # no temporary file left


def test_init_errors_exit_2_with_the_reason(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["init", "--chain", "solana", "--out", str(tmp_path / "x.toml")])
    assert e.value.code == 2
    assert "invalid choice: 'solana'" in capsys.readouterr().err
    assert main(["init", "--chain", "base", "--protocols", "perennial_v2", "--out", str(tmp_path / "x.toml")]) == 2
    assert "perennial_v2 has no base preset" in capsys.readouterr().err
    assert main(["init", "--chain", "base", "--rpc-url", "ws://node", "--out", str(tmp_path / "x.toml")]) == 2
    assert "chain.rpc_url: must be an http:// or https:// URL" in capsys.readouterr().err
    assert main(["init", "--chain", "base", "--out", str(tmp_path / "no" / "x.toml")]) == 2
    assert not any(tmp_path.iterdir())


def test_init_help_names_every_flag(capsys):
    import argparse

    from keeper.cli import _parser
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    init = sub.choices["init"]
    flags = [a for a in init._actions if a.option_strings and a.dest != "help"]
    assert {f.option_strings[0] for f in flags} == {"--chain", "--protocols", "--out", "--rpc-url", "--force",
                                                  "--log-json", "--log-level"}  # the last two: global flags
    for f in flags:
        assert f.help and len(f.help) > 10, f"{f.option_strings[0]} has no help"
    with pytest.raises(SystemExit) as e:
        main(["init", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for f in flags:
        assert f.help.split()[0] in text and f.option_strings[0] in text


def test_version_comes_from_the_package_metadata(capsys):
    from importlib.metadata import version
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"keeper {version('keeper')}"


def test_gearbox_presets_configure_the_official_address_provider(tmp_path):
    """Ethereum and Arbitrum watch Gearbox V3 through the AddressProviderV3 of Gearbox's own SDK
    (checksummed) from its deployment block, with no list of credit managers; Base says Gearbox is
    not deployed there."""
    for chain, provider, block in (("ethereum", "0x9ea7b04Da02a5373317D745c1571c84aaD03321D", 18433056),
                                   ("arbitrum", "0x7d04eCdb892Ae074f03B5D0aBA03796F90F3F2af", 184650310)):
        preset = load_preset(chain)
        (m,) = [m for m in preset.markets if m.kind == "gearbox_v3"]
        assert m.fields == {"address_provider": provider, "start_block": block}
        assert to_checksum_address(provider) == provider
        assert "Gearbox-protocol/sdk" in m.source and "ADDRESS_PROVIDER_BLOCK" in m.field_sources["start_block"]
        assert "gearbox_v3" not in {o.kind for o in preset.omitted}
        path = tmp_path / f"{chain}.toml"
        path.write_text(render(preset, [m], rpc_url="https://node.example/rpc"))
        (cfg,) = load_config(path).protocols
        assert (cfg.address_provider, cfg.credit_managers, cfg.start_block) == (provider, None, block)
    reason = next(o.reason for o in load_preset("base").omitted if o.kind == "gearbox_v3")
    assert "not deployed on Base" in reason and not HEX40.search(reason)
    assert "gearbox_v3" not in load_preset("base").kinds()


README_NAMES = {"aave_v3": "Aave V3", "compound_v3": "Compound III", "morpho_blue": "Morpho Blue",
                "perennial_v2": "Perennial V2", "gearbox_v3": "Gearbox V3"}


@pytest.mark.parametrize("chain", CHAINS)
def test_readme_says_what_each_preset_includes(chain):
    """README's "Going live" bullet for the chain names each protocol the preset includes before
    "left out", and each one it omits after it."""
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    m = re.search(rf"^- `{chain}`: (.*?)(?=^- `|^\s*$)", readme, re.M | re.S)
    assert m, f"README has no '- `{chain}`:' bullet in its Going live section"
    # "(cWETHv3 left out: ...)" is about a market, not a protocol
    text = re.sub(r"\([^)]*\)", "", " ".join(m.group(1).split()))
    included, _, left_out = text.partition("left out:")
    preset = load_preset(chain)
    assert {k for k, n in README_NAMES.items() if n in included} == {mk.kind for mk in preset.markets}
    assert {k for k, n in README_NAMES.items() if n in left_out} == {o.kind for o in preset.omitted}
