"""`keeper demo --json`, run as an operator runs it: its own Anvil, every protocol of the world, a
30% WETH drop; the report names the protocol of every liquidation and the code each protocol ran on."""
from __future__ import annotations

import pytest

import asyncio
import json
import sys

from keeper_devnet.demo import DEMO_POSITIONS
from keeper_devnet.protocols.compound_v3.world import COMET_DEMO_POSITIONS
from keeper_devnet.protocols.gearbox_v3.world import GEARBOX_DEMO_POSITIONS
from keeper_devnet.protocols.morpho_blue.world import MORPHO_DEMO_POSITIONS
from keeper_devnet.protocols.perennial_v2.world import PERENNIAL_DEMO_POSITIONS
from keeper_devnet.world import ALL_PROTOCOLS

pytestmark = pytest.mark.anvil  # needs the node tools (npm ci)

PACKAGES = {"aave_v3": "@aave/core-v3@1.19.3", "morpho_blue": "@morpho-org/morpho-blue@1.0.0",
            "compound_v3": "stand-in", "gearbox_v3": "@gearbox-protocol/core-v3@1.52.1",
            "perennial_v2": "stand-in"}


async def test_demo_json_report():
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "keeper.cli", "demo", "--json",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, err.decode()[-3000:]
    report = json.loads(out)
    assert report["reverted"] == [] and report["failed"] == []
    assert set(report["contracts"]) == set(ALL_PROTOCOLS)
    # Each position opened once, counted once (a Gearbox borrower and its credit account are one).
    assert report["positions"] == sum(map(len, (DEMO_POSITIONS, COMET_DEMO_POSITIONS, GEARBOX_DEMO_POSITIONS,
                                                MORPHO_DEMO_POSITIONS, PERENNIAL_DEMO_POSITIONS))) == 44
    for name, code in PACKAGES.items():
        assert report["contracts"][name] == code
    by_protocol = {p: [o for o in report["liquidations"] if o["protocol"] == p] for p in ALL_PROTOCOLS}
    assert all(by_protocol.values()), {p: len(v) for p, v in by_protocol.items()}  # each protocol liquidated
    for o in report["liquidations"]:
        assert o["tx_hash"].startswith("0x") and o["realised_profit_usd"] > 0
        assert abs(o["realised_profit_usd"] - o["predicted_profit_usd"]) <= 0.005 * abs(o["predicted_profit_usd"])
    # Perennial pays at the next oracle version: credited, shown, then claimed.
    [(token, credited)] = report["rewards_credited_before_claim"]["perennial_v2"].items()
    claims = [c for c in report["claims"] if c["protocol"] == "perennial_v2"]
    assert claims and sum(int(c["details"]["collects"].get(token, 0)) for c in claims) == int(credited) > 0
    # What is left liquidatable is only what no liquidation can take (named, with why).
    assert all(r["why"] != "liquidatable" for r in report["still_liquidatable"]), report["still_liquidatable"]
