"""scripts/bench.py run small, as a maintainer runs it (a smoke test: its figures are printed, never
asserted): it finishes and prints one JSON document with every figure for both contenders, and both
liquidated every account the price drop made liquidatable; --profile writes the keeper's profiles."""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.anvil  # starts its own Anvil
BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"
FIELDS = ("p50_ms", "p99_ms", "rpc_per_block", "bytes_per_block", "lag_blocks_first", "lag_blocks_last",
          "peak_rss_mb", "restart_ready_s", "cold_discovery_s")


async def test_bench_json_has_every_figure_for_both(tmp_path):
    proc = await asyncio.create_subprocess_exec(sys.executable, str(BENCH), "--positions", "50", "--liquidatable",
                                                "3", "--json", "--profile", str(tmp_path / "prof"),
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 600)
    assert proc.returncode == 0, err.decode()[-3000:]
    doc = json.loads(out)  # the whole of stdout is one JSON document
    assert doc["positions"] == 50
    assert "positions: 50/50" in err.decode()  # progress while building
    for who in ("keeper", "baseline"):
        figures = doc[who]
        for f in FIELDS:
            assert isinstance(figures[f], (int, float)) and figures[f] >= 0, (who, f, figures)
        assert figures["liquidated"] == 3, (who, figures)
        assert figures["lag_blocks_first"] >= 1 and figures["lag_blocks_last"] >= figures["lag_blocks_first"]
        assert figures["rpc_per_block"] >= 1 and figures["heads_via_ws"] is True
    for name in ("restart", "steps"):  # --profile: the keeper's restart and steps, as cProfile saw them
        assert (tmp_path / "prof" / f"{name}.prof").stat().st_size > 0
        assert "function calls" in (tmp_path / "prof" / f"{name}.txt").read_text()
