"""The package as an operator installs it: the wheel built from keeper/, abis/ and the packaging files
alone, installed into a fresh virtualenv outside the checkout, runs `keeper --help` and
`keeper scan` against a devnet started here, with the ABIs read from inside the installed package
and no devnet code in it.

Python 3.11 (this interpreter) always; other interpreters the package accepts (3.12, 3.13) when
`python3.12` / `python3.13` run on this machine or WHEEL_TEST_PYTHONS lists them (':'-separated).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from keeper.abi import load as load_abi
from keeper_devnet.anvil import free_port
from keeper_devnet.world import ALL_PROTOCOLS, DEVNET_PASSWORD, DEVNET_PASSWORD_ENV, KEEPER_KEY

pytestmark = [pytest.mark.anvil, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_FILES = ["keeper", "abis", "pyproject.toml", "setup.py", "README.md"]


def _runs(python: str) -> str | None:
    """``python``'s "3.X" if it runs and the package accepts it (3.11 to 3.13)."""
    try:
        out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = out.stdout.strip()
    return version if out.returncode == 0 and version in ("3.11", "3.12", "3.13") else None


def _pythons() -> list[str]:
    found = {_runs(sys.executable): sys.executable}
    extra = [p for p in os.environ.get("WHEEL_TEST_PYTHONS", "").split(":") if p]
    for python in extra + [shutil.which(f"python3.{m}") or "" for m in (12, 13)]:
        version = _runs(python) if python else None
        if version and version not in found:
            found[version] = python
    return [found[v] for v in sorted(v for v in found if v)]


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything pointing into the checkout or its venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT)))
    return env | extra


def run(args: list[str | Path], cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=_clean_env(**env), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the packaged files only (no build/ left in the checkout, and
    proof that nothing else in the checkout is needed)."""
    src = tmp_path_factory.mktemp("src")
    for name in PACKAGE_FILES:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(
            ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if (ROOT / name).is_dir()
                                       else {}))
    out = src / "dist"
    built = run([sys.executable, "-m", "build", "--wheel", "--outdir", out, src], cwd=src)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (whl,) = out.glob("keeper-*.whl")
    return whl


def test_wheel_holds_the_runtime_and_every_abi_and_no_devnet(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert all(n.startswith(("keeper/", "keeper-")) for n in names), [n for n in names if not n.startswith("keeper")]
    # No devnet, no stand-ins, no node tools; the executor's source ships beside its compiled artifact.
    assert not [n for n in names if "devnet" in n or n.endswith(".js")
                or (n.endswith(".sol") and not n.startswith("keeper/executor/"))]
    assert {"keeper/executor/LiquidationExecutor.json", "keeper/executor/LiquidationExecutor.sol"} <= set(names)
    abis = {p.relative_to(ROOT / "abis").as_posix() for p in (ROOT / "abis").glob("*/*.json")}
    assert abis and {n.removeprefix("keeper/abis/") for n in names if n.startswith("keeper/abis/")} == abis
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "keeper").rglob("*.py")}
    assert modules <= set(names)


@pytest.fixture(scope="module")
async def devnet_config(tmp_path_factory):
    """`keeper devnet` (from the checkout, which has the devnet package) and the config it writes."""
    cfg = tmp_path_factory.mktemp("devnet") / "devnet.toml"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "keeper.cli", "devnet", "--port", str(free_port()), "--config-out", str(cfg),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        lines: list[str] = []
        while not any(line.startswith("config:") for line in lines):
            line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
            assert line, (await proc.stderr.read()).decode()[-2000:]
            lines.append(line)
        yield cfg
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]


@pytest.mark.parametrize("python", _pythons())
def test_installed_wheel_runs_keeper_scan_against_a_devnet(python, wheel, devnet_config, tmp_path):
    home = tmp_path / "operator"  # the working directory: outside the checkout
    home.mkdir()
    assert ROOT not in home.resolve().parents
    venv = tmp_path / "venv"
    made = run([python, "-m", "venv", venv], cwd=home)
    assert made.returncode == 0, made.stderr
    installed = run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel], cwd=home)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    keeper = venv / "bin" / "keeper"

    helped = run([keeper, "--help"], cwd=home)
    assert helped.returncode == 0 and all(c in helped.stdout for c in ("run", "scan", "config")), helped.stderr

    probe = run([venv / "bin" / "python", "-c",
                 "import json, keeper, keeper.abi, keeper.engine.daemon, importlib.util; print(json.dumps(["
                 "keeper.__file__, str(keeper.abi.ABI_DIR), len(keeper.abi.load('ERC20').functions),"
                 "importlib.util.find_spec('keeper_devnet') is None]))"], cwd=home)
    assert probe.returncode == 0, probe.stderr
    module, abi_dir, erc20_functions, no_devnet = json.loads(probe.stdout)
    site = venv.resolve()
    assert Path(module).resolve().is_relative_to(site)
    assert Path(abi_dir).resolve() == Path(module).resolve().parent / "abis"  # keeper/abis inside site-packages
    assert erc20_functions == len(load_abi("ERC20").functions) and no_devnet

    refused = run([keeper, "devnet"], cwd=home)  # the devnet is not part of the runtime package
    assert refused.returncode == 2 and "needs the keeper-devnet package" in refused.stderr

    scan = run([keeper, "scan", "--json", "--log-json"], cwd=home, timeout=120,
               KEEPER_CONFIG=str(devnet_config), **{DEVNET_PASSWORD_ENV: DEVNET_PASSWORD})
    assert scan.returncode == 0, scan.stderr[-3000:]
    rows = json.loads(scan.stdout)["accounts"]
    # Aave has lenders only; the other protocols' demo borrowers are all healthy before any drop.
    assert {r["protocol"] for r in rows} == set(ALL_PROTOCOLS) - {"aave_v3"}
    assert rows and not any(r["liquidatable"] for r in rows)
    started = [json.loads(line) for line in scan.stderr.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "keeper.started" for e in started)
    assert KEEPER_KEY.removeprefix("0x").lower() not in (scan.stdout + scan.stderr).lower()
