"""Start-up sanity checks: wrong chain, wrong signer, missing contract code -> exit status 2."""
from __future__ import annotations

import copy

import pytest
from keeper_devnet.world import (
    DEVNET_PASSWORD,
    DEVNET_PASSWORD_ENV,
    config_text,
    write_devnet_keystore,
)

from keeper.cli import main


@pytest.fixture
def world(real_world):
    return copy.deepcopy(real_world)


def run_cli(world, tmp_path, monkeypatch, edit=lambda t: t, command="scan"):
    ks = write_devnet_keystore(tmp_path / "k.json")
    monkeypatch.setenv(DEVNET_PASSWORD_ENV, DEVNET_PASSWORD)
    path = tmp_path / "k.toml"
    path.write_text(edit(config_text(world, keystore=ks)))
    return main([command, "--config", str(path)])


def test_scan_works_with_the_devnet_keystore(world, tmp_path, monkeypatch, capsys):
    assert run_cli(world, tmp_path, monkeypatch, command="scan") == 0


def test_wrong_chain_id(world, tmp_path, monkeypatch, capsys):
    code = run_cli(world, tmp_path, monkeypatch, lambda t: t.replace("chain_id = 31337", "chain_id = 1"))
    assert code == 2
    assert "is on chain 31337, config says 1" in capsys.readouterr().err


def test_wrong_signer_address(world, tmp_path, monkeypatch, capsys):
    other = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    code = run_cli(world, tmp_path, monkeypatch, lambda t: t.replace(world.keeper_address, other))
    assert code == 2
    assert f"config signer.address is {other}" in capsys.readouterr().err


def test_no_code_at_the_addresses_provider(world, tmp_path, monkeypatch, capsys):
    empty = "0x000000000000000000000000000000000000dEaD"
    code = run_cli(world, tmp_path, monkeypatch, lambda t: t.replace(world.aave.provider, empty))
    assert code == 2
    assert "no contract at addresses_provider" in capsys.readouterr().err


def test_wrong_keystore_password(world, tmp_path, monkeypatch, capsys):
    ks = write_devnet_keystore(tmp_path / "k.json")
    monkeypatch.setenv(DEVNET_PASSWORD_ENV, "wrong")
    path = tmp_path / "k.toml"
    path.write_text(config_text(world, keystore=ks))
    assert main(["scan", "--config", str(path)]) == 2
    assert "cannot decrypt" in capsys.readouterr().err


def test_a_store_of_another_chain_is_refused(world, tmp_path, monkeypatch, capsys):
    """[store] path of a devnet since restarted (same chain id, another genesis): exit 2 naming the
    store, and the store is left as it was."""
    import asyncio

    from keeper.store import SqliteStore

    other_genesis = "0x" + "5e" * 32

    async def bind() -> None:
        s = await SqliteStore.open(tmp_path / "keeper.db")  # the config's default path, beside it
        await s.bind_chain(31337, other_genesis)
        await s.close()

    asyncio.run(bind())
    assert run_cli(world, tmp_path, monkeypatch, command="scan") == 2
    err = capsys.readouterr().err
    assert "keeper.db holds the state of chain 31337 (genesis 0x5e5e5e5e5e" in err and "another file" in err
