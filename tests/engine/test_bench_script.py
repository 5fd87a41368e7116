"""scripts/bench.py run small, as a maintainer runs it: its figures are printed, never asserted,
but the counts it prints must be right (the lender in the Pool's logs is not one of the borrowers)."""
from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.anvil  # starts its own Anvil
BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"


async def test_bench_counts_borrowers_and_the_lender_apart():
    proc = await asyncio.create_subprocess_exec(sys.executable, str(BENCH), "--accounts", "4", "--liquidatable", "2",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    text = out.decode()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert re.search(r"^discovery of 4 of 4 borrowers \(and 1 other account\(s\): the lender\)", text, re.MULTILINE), text
    assert re.search(r"^mirror of 5 accounts \(4 borrowers and the lender; health only\)", text, re.MULTILINE), text
    assert re.search(r"^reaction \(2 s blocks\): 2 liquidations ", text, re.MULTILINE), text
