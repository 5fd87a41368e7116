"""`keeper demo --execution inventory` without a node: the flag is accepted and reaches run_demo,
the report says the execution it ran, an unknown mode exits 2; and the config the demo writes for
its world with execution="inventory" sets inventory (and the world's executor) on every entry of a
kind that takes it, leaving the others (Perennial) as they are. The demo itself, in its default
flash mode, runs on Anvil in tests/engine/test_demo.py."""
from __future__ import annotations

import json
import tomllib
from types import SimpleNamespace

import pytest
from keeper_devnet import demo
from keeper_devnet.protocols.gearbox_v3.world import gearbox_config_entry
from keeper_devnet.tokens import Token
from keeper_devnet.world import FLASH_KINDS, World, aave_entry, config_text

from keeper.cli import main

EXECUTOR = "0x" + "e1" * 20


def report(execution: str) -> dict:
    return {"liquidations": [], "claims": [], "reverted": [], "skipped": [], "failed": [], "contracts": {},
            "positions": 0, "execution": execution, "wallet_before": {}, "rewards_credited_before_claim": {},
            "still_liquidatable": []}


@pytest.mark.parametrize("flags,expected", [(["--execution", "inventory"], "inventory"), ([], "flash")])
def test_demo_execution_flag_reaches_run_demo_and_the_report(flags, expected, monkeypatch, capsys):
    asked: list[str] = []

    async def fake_run_demo(*, execution: str = "flash") -> dict:
        asked.append(execution)
        return report(execution)
    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    assert main(["demo", "--json", *flags]) == 0
    assert asked == [expected]
    assert json.loads(capsys.readouterr().out)["execution"] == expected
    assert main(["demo", *flags]) == 0
    assert f"execution: {expected}" in capsys.readouterr().out


def test_an_unknown_execution_mode_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--execution", "borrowed"])
    assert e.value.code == 2 and "invalid choice: 'borrowed'" in capsys.readouterr().err


def test_the_demo_config_in_inventory_mode_sets_it_on_every_flash_kind():
    weth = Token("WETH", "0x" + "0a" * 20, 18, "0x" + "0f" * 20, 3_000 * 10**8)
    perennial = '\n[[protocols]]\nkind = "perennial_v2"\nname = "perennial_v2"\nmarkets = ["0x' + "0b" * 20 + '"]\n'
    world = World("http://127.0.0.1:8545", 31337, {"WETH": weth}, None, "0x" + "0c" * 20, [],  # type: ignore[arg-type]
                  entries={"aave_v3": aave_entry(SimpleNamespace(provider="0x" + "0d" * 20, rules="v3.0")),  # type: ignore[arg-type]
                           "gearbox_v3": gearbox_config_entry(SimpleNamespace(credit_manager="0x" + "0e" * 20)),  # type: ignore[arg-type]
                           "perennial_v2": perennial},
                  extra={"executor": EXECUTOR})
    for execution in ("inventory", "flash"):
        entries = {p["kind"]: p for p in tomllib.loads(config_text(world, execution=execution))["protocols"]}
        assert set(entries) == {"aave_v3", "gearbox_v3", "perennial_v2"}
        for kind, entry in entries.items():
            if kind in FLASH_KINDS:
                assert entry["execution"] == execution and entry["executor"] == EXECUTOR, kind
            else:
                assert "execution" not in entry and "executor" not in entry, kind
