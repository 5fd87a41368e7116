"""The going-live commands as an operator meets them: every flag of init, rehearse and shadow has its
--help text; a bad URL or a node that does not answer is a clear error with exit status 2 that never
shows the URL's path, query or credentials; rehearse names the missing Anvil binary."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from keeper.cli import _parser, main
from keeper.live.anvil import free_port
from keeper.live.fork import Shock

KEEPER = [sys.executable, "-m", "keeper.cli"]
SECRET = "s3cr3t-api-key"


def _subcommand(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = sub.choices[name]
    return parser


@pytest.mark.parametrize("command", ["init", "rehearse", "shadow"])
def test_every_flag_has_help(command):
    actions = [a for a in _subcommand(command)._actions if a.option_strings and "-h" not in a.option_strings]
    assert actions
    for a in actions:
        assert a.help and len(a.help) > 10, a.option_strings
    out = subprocess.run([*KEEPER, command, "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0
    for a in actions:
        assert a.option_strings[0] in out.stdout


def _config(tmp_path, rpc_url: str):
    path = tmp_path / "keeper.toml"
    assert main(["init", "--chain", "ethereum", "--protocols", "aave_v3", "--out", str(path), "--rpc-url", rpc_url]) == 0
    return path


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*KEEPER, *args], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **(env or {})})


@pytest.mark.anvil  # rehearse looks for the anvil binary first
def test_unreachable_node_exit_2_without_the_secret(tmp_path):
    dead = f"http://user:{SECRET}@127.0.0.1:{free_port()}/v2/{SECRET}?key={SECRET}"
    cfg = _config(tmp_path, dead)
    for args in (["shadow", "--config", str(cfg), "--blocks", "1"],
                 ["rehearse", "--config", str(cfg), "--fork-url", dead, "--blocks", "1"]):
        out = _run(*args)
        assert out.returncode == 2, (args[0], out.stderr[-1500:])
        assert "cannot reach the node at http://127.0.0.1:" in out.stderr, out.stderr[-1500:]
        assert SECRET not in out.stdout + out.stderr


@pytest.mark.anvil  # rehearse looks for the anvil binary first
def test_bad_urls_exit_2(tmp_path):
    cfg = _config(tmp_path, "http://127.0.0.1:8545")  # never reached: the URLs are refused first
    out = _run("rehearse", "--config", str(cfg), "--fork-url", f"ftp://{SECRET}@example.org")
    assert out.returncode == 2 and "--fork-url: must be an http:// or https:// URL" in out.stderr
    assert SECRET not in out.stderr
    cfg.write_text(cfg.read_text().replace('rpc_url = "http://127.0.0.1:8545"', 'rpc_url = "localhost:8545"'))
    out = _run("shadow", "--config", str(cfg))
    assert out.returncode == 2 and "chain.rpc_url: must be an http:// or https:// URL" in out.stderr


def test_rehearse_names_a_missing_anvil(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = _config(tmp_path, dead)
    out = _run("rehearse", "--config", str(cfg), "--fork-url", dead,
               env={"KEEPER_ANVIL": str(tmp_path / "no-anvil")})
    assert out.returncode == 2 and f"KEEPER_ANVIL: {tmp_path / 'no-anvil'} is not an executable file" in out.stderr


def test_bad_flags_exit_2(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = _config(tmp_path, dead)
    out = _run("rehearse", "--config", str(cfg), "--fork-url", dead, "--price-shock", "WETH=down")
    assert out.returncode == 2 and "expected TOKEN=PERCENT" in out.stderr
    out = _run("shadow", "--config", str(cfg), "--from-block", "5")
    assert out.returncode == 2 and "--from-block replays history: give --to-block too" in out.stderr
    out = _run("shadow", "--config", str(cfg), "--blocks", "0")
    assert out.returncode == 2 and "must be at least 1" in out.stderr


@pytest.mark.parametrize(("text", "token", "pct"), [("WETH=-30%", "WETH", "-30"), ("weth = -12.5", "weth", "-12.5"),
                                                     ("0xAbC0000000000000000000000000000000000001=+5%",
                                                      "0xAbC0000000000000000000000000000000000001", "5")])
def test_shock_parsing(text, token, pct):
    s = Shock.parse(text)
    assert (s.token, str(s.pct)) == (token, pct)


def test_shock_arithmetic_and_refusals():
    assert Shock.parse("WETH=-30%").apply(3_000_00000000) == 2_100_00000000
    assert Shock.parse("WBTC=+10%").apply(60_000_00000000) == 66_000_00000000
    for bad in ("WETH=-100%", "WETH", "=5%", "WETH=x%"):
        with pytest.raises(Exception, match="--price-shock"):
            Shock.parse(bad)
