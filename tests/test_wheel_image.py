"""The runtime package as the Docker image installs it: a wheel built from this checkout, imported on
its own (not the editable checkout), finds its ABIs and presets and runs `keeper --version` and
`keeper init`; it holds no devnet, tests or node tools."""
from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, sys
sys.path[:0] = [SITE, DEPS]
import keeper, keeper.abi
from keeper.cli import main
from keeper.config import load_config
out = {"keeper": keeper.__file__, "abis": str(keeper.abi.ABI_DIR),
       "pool_functions": len(keeper.abi.load("aave_v3/AaveV3Pool").functions)}
out["init"] = main(["init", "--chain", "base", "--out", CONFIG])
out["chain_id"] = load_config(CONFIG).chain.chain_id
try:
    import keeper_devnet
    out["devnet"] = keeper_devnet.__file__
except ModuleNotFoundError:
    out["devnet"] = None
print(json.dumps(out))
"""


def test_wheel_alone_runs_init_and_finds_its_abis(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path / "w"),
                    str(ROOT)], check=True, capture_output=True, timeout=240)
    (wheel,) = (tmp_path / "w").glob("keeper-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("keeper/abis/aave_v3/") for n in names)
    assert "keeper/presets/base.py" in names and "keeper/chain/l1fee.py" in names
    assert "keeper/live/rehearse.py" in names and "keeper/live/aggregator.py" in names
    assert not [n for n in names if n.startswith(("keeper_devnet/", "tests/", "node_modules/", "devnet/"))]
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = PROBE.replace("SITE", repr(str(site))).replace("DEPS", repr(sysconfig.get_paths()["purelib"])) \
                .replace("CONFIG", repr(str(tmp_path / "k.toml")))
    # -I -S: no user site, no .pth files, so the checkout's editable install is not on the path.
    res = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["keeper"].startswith(str(site)) and out["abis"].startswith(str(site))
    assert out["pool_functions"] > 5 and out["init"] == 0 and out["chain_id"] == 8453
    assert out["devnet"] is None
    probe = (f"import sys; sys.path[:0] = [{str(site)!r}, {sysconfig.get_paths()['purelib']!r}]; "
             "from keeper.cli import main; main(['--version'])")
    version = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=60,
                             check=False)
    assert version.stdout.strip() == "keeper 0.1.0", version.stderr[-500:]


def test_the_image_runs_as_a_non_root_user_and_installs_only_the_wheel():
    """The Dockerfile as written (no image is built here): its runtime stage ends on a USER that is
    not root, created with a non-zero uid, and takes from the build stage only the wheel, which that
    stage builds from the runtime package's files alone (no devnet, tests or node tools)."""
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    text = "\n".join(lines).replace("\\\n", " ")
    stages = [s.splitlines() for s in text.split("\nFROM ")]
    build, runtime = stages[-2], stages[-1]
    users = [ln.split()[1] for ln in runtime if ln.startswith("USER ")]
    assert users, "the runtime stage sets no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    if not user.isdigit():
        created = [ln for ln in runtime if ln.startswith("RUN ") and "useradd" in ln and ln.rstrip().endswith(user)]
        assert created, f"user {user} is not created in the runtime stage"
        uid = created[0].split("--uid", 1)[1].split()[0]
        assert int(uid) > 0
    copies = [ln for ln in runtime if ln.startswith(("COPY ", "ADD "))]
    assert copies == ["COPY --from=build /wheels /wheels"], copies
    sources = [w for ln in build if ln.startswith(("COPY ", "ADD ")) for w in ln.split()[1:-1]]
    assert set(sources) <= {"pyproject.toml", "setup.py", "README.md", "keeper", "abis"}, sources
    assert {"keeper", "abis"} <= set(sources)
