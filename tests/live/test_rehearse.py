"""`keeper rehearse` on a fork of the demo devnet: the session Anvil with every venue is the real
chain, the rehearsal forks it under another chain id, shocks WETH by -30% there and liquidates what
each venue calls liquidatable after such a drop, with predicted and realised profit; the real chain
is left as it was."""
from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest
from keeper_devnet.world import (
    ALL_PROTOCOLS,
    KEEPER_ADDRESS,
    KEEPER_KEY,
    KEEPER_KEY_ENV,
    config_text,
)

from keeper.config import load_config
from keeper.live.fork import Shock
from keeper.live.rehearse import Options, rehearse
from tests.live.helpers import chain_state, drop_weth, venue_verdicts



@pytest.fixture
def keeper_key(monkeypatch):
    monkeypatch.setenv(KEEPER_KEY_ENV, KEEPER_KEY)


async def expected_after_drop(d, world) -> dict[str, set[str]]:
    """What each venue calls liquidatable after a real 30% WETH drop on the devnet (then undone)."""
    snap = await d.rpc("evm_snapshot", [])
    try:
        await drop_weth(d, world)
        out = await venue_verdicts(d, world)
    finally:
        await d.rpc("evm_revert", [snap])
    return out


async def test_rehearsal_liquidates_on_the_fork_only(deployer, world, tmp_path, keeper_key):
    expected = await expected_after_drop(deployer, world)
    assert all(expected.values()), expected
    now = await venue_verdicts(deployer, world)
    assert not now["aave_v3"] and not now["compound_v3"]
    holders = [KEEPER_ADDRESS, *world.extra["aave_borrowers"], *world.extra["comet_borrowers"]]
    before = await chain_state(deployer, world, holders)
    path = tmp_path / "keeper.toml"
    path.write_text(config_text(world))
    report = await rehearse(load_config(path), Options(fork_url=world.url, blocks=6,
                                                       shocks=(Shock.parse("WETH=-30%"),)))
    assert report.real_chain_id == world.chain_id != report.fork_chain_id
    assert [s.token for s in report.shocks] == ["WETH"]
    assert report.shocks[0].after == report.shocks[0].before * 7 // 10
    # Gearbox's WETH PythPriceFeed reads Pyth's stored price: shocked in storage too.
    assert [(p.label, p.after) for p in report.pyth_shocks] == [("WETH", report.pyth_shocks[0].before * 7 // 10)]
    assert report.reverted == 0 and report.step_errors == []
    liquidated = {p: set() for p in ALL_PROTOCOLS}
    for row in report.plans:
        assert row.status == "confirmed", row
        if row.label != "claim liquidation fees":
            liquidated[row.protocol].update(row.accounts)
            assert row.lag_blocks is not None and row.lag_blocks >= 1
        assert row.gas_used and row.predicted_usd is not None
        assert row.realised_usd == pytest.approx(row.predicted_usd, rel=0.01, abs=0.05)
    assert liquidated == expected
    # The real chain: no block, no nonce, no balance moved.
    assert await chain_state(deployer, world, holders) == before
    text = report.text()
    assert "predicted_usd" in text and "realised_usd" in text and "WETH -30" in text


async def test_rehearse_command_funds_a_fresh_wallet(deployer, world, tmp_path):
    """`keeper rehearse --throwaway-key --json`: a fresh key holds nothing on the real chain; the
    fork's balances are written for it (native, and the ERC20s its plans spend, found by probing the
    balance slot), and it liquidates there."""
    path = tmp_path / "keeper.toml"
    path.write_text(config_text(world, protocols=["aave_v3", "morpho_blue"]))
    env = {k: v for k, v in os.environ.items() if k != KEEPER_KEY_ENV}  # no key needed
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "keeper.cli", "--log-level", "warning", "rehearse", "--config", str(path),
        "--fork-url", world.url, "--blocks", "3", "--throwaway-key", "--price-shock", "weth=-30", "--json",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, err.decode()[-2000:]
    report = json.loads(out)
    assert report["signer"] != KEEPER_ADDRESS and report["fork_chain_id"] != report["real_chain_id"]
    funded = {f["token"]: f for f in report["funded"]}
    assert funded["native"]["before"] == "0" and funded["native"]["amount"] == str(10 * 10**18)
    usdc = world.tokens["USDC"].address
    assert funded[usdc]["before"] == "0" and int(funded[usdc]["amount"]) > 0
    assert {r["protocol"] for r in report["plans"]} == {"aave_v3", "morpho_blue"}
    assert all(r["status"] == "confirmed" and not r["reverted"] for r in report["plans"])
    assert report["totals"]["realised_usd"] == pytest.approx(report["totals"]["predicted_usd"], rel=0.01)
    assert await deployer.w3.eth.get_balance(report["signer"]) == 0  # funded on the fork only
