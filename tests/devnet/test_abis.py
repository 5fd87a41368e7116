"""abis/ (what the keeper speaks) is exactly what scripts/extract_abis.py takes from the protocols'
published artifacts, or from the stand-ins where a protocol publishes none (Comet, Perennial):
no file edited by hand, none missing, none left over."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.anvil  # compiles with solcjs (npm's node tools)
ROOT = Path(__file__).resolve().parents[2]


async def test_abis_match_the_extraction():
    proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "scripts" / "extract_abis.py"), "--check",
                                                cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 600)
    shipped = sorted(ROOT.glob("abis/*/*.json"))
    assert proc.returncode == 0, (out + err).decode()[-3000:]
    assert out.decode().strip() == f"abis/ matches the extraction ({len(shipped)} files)"
    assert {p.parent.name for p in shipped} >= {"common", "aave_v3", "compound_v3", "gearbox_v3", "morpho_blue",
                                                "perennial_v2"}
