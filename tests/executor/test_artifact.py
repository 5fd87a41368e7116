"""The executor's compiled artifact: current with its source, shipped in the package, and the calldata
encoders agree with the ABI it holds."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from eth_abi import decode

from keeper import executor as ex

ROOT = Path(__file__).resolve().parents[2]
A, B, C = "0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "c3" * 20


def test_artifact_records_the_source_it_was_built_from():
    art = ex.artifact()
    source = ROOT / art["source"]
    assert art["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest(), \
        "LiquidationExecutor.sol changed: run scripts/build_executor.py"
    assert art["bytecode"].startswith("0x") and len(art["bytecode"]) > 10_000
    assert art["settings"]["evmVersion"] == "cancun"  # transient storage (EIP-1153)
    names = {e["name"] for e in art["abi"] if e["type"] == "function"}
    assert {"liquidateAaveV3", "liquidateMorphoBlue", "liquidateCompoundV3", "liquidateGearboxPartial",
            "liquidateGearboxFull", "withdraw", "owner", "onMorphoLiquidate", "onMorphoFlashLoan",
            "executeOperation", "uniswapV3FlashCallback"} == names


@pytest.mark.anvil  # needs the pinned solcjs from node_modules
def test_artifact_is_what_the_source_compiles_to():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_executor.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_path_encoding():
    path = ex.encode_path([A, B, C], [500, 3000])
    assert len(path) == 20 + 23 * 2
    assert path[:20] == bytes.fromhex(A[2:]) and path[20:23] == (500).to_bytes(3, "big")
    assert path[-20:] == bytes.fromhex(C[2:])
    with pytest.raises(ValueError, match="fee 42 is not a Uniswap V3 fee tier"):
        ex.encode_path([A, B], [42])
    with pytest.raises(ValueError, match="n - 1 fees"):
        ex.encode_path([A, B], [500, 3000])


def test_calldata_round_trips_through_the_abi():
    liq = ex.GearboxFullLiquidation(A, B, C, A, 123, (B, C), (ex.PriceUpdate(A, b"\x01\x02"),), b"\x09")
    flash = ex.Flash(ex.FlashSource.UNISWAP_V3, B)
    swaps = [ex.Swap(C, ex.encode_path([B, C], [3000]), 0, 7)]
    data = ex.liquidate_gearbox_full(liq, flash, swaps, ex.Profit(C, 5))
    fn = ex.executor_abi().fn("liquidateGearboxFull")
    assert data[:4] == fn.selector
    got = decode(list(fn.inputs), data[4:])
    assert got[0][4] == 123 and [x.lower() for x in got[0][5]] == [B, C]
    assert got[0][6][0][1] == b"\x01\x02" and got[0][7] == b"\x09"
    assert got[1] == (2, B.lower()) and got[2][0][3] == 7 and got[3] == (C.lower(), 5)


def test_executor_errors_decode():
    from eth_abi import encode
    from eth_utils import keccak
    data = keccak(text="InsufficientProfit(int256,uint256)")[:4] + encode(["int256", "uint256"], [-5, 10])
    assert ex.decode_error(data) == ("InsufficientProfit", (-5, 10))
    assert ex.decode_error(b"\xde\xad\xbe\xef") is None
