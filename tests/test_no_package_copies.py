"""No file of this repository (tracked, or untracked and not ignored) is a byte-for-byte copy of a file
shipped in the npm packages package.json depends on directly: artifacts and sources are read from
node_modules at run time, never copied in. Files under 64 bytes are skipped (identity is
coincidence there). Sizes are compared first, so only same-size candidates are hashed."""
from __future__ import annotations

import pytest

import hashlib
import json
import os
import subprocess
from collections import defaultdict
from pathlib import Path

pytestmark = pytest.mark.anvil  # needs the node tools (npm ci)

ROOT = Path(__file__).resolve().parents[1]
MIN_SIZE = 64


def repo_files(root: Path = ROOT) -> list[Path]:
    out: set[str] = set()
    for extra in ([], ["--others", "--exclude-standard"]):
        listing = subprocess.run(["git", "-C", str(root), "ls-files", "-z", *extra], check=True,
                                 capture_output=True).stdout.decode()
        out.update(p for p in listing.split("\0") if p)
    return [root / p for p in sorted(out)]


def package_dirs(root: Path = ROOT) -> list[Path]:
    """node_modules/<name> for every direct dependency (an alias such as "oz4": "npm:..." is
    installed under its alias name)."""
    deps = json.loads((root / "package.json").read_text())["dependencies"]
    return [root / "node_modules" / name for name in sorted(deps)]


def _sha256(path: Path) -> bytes:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def find_copies(files: list[Path], packages: list[Path]) -> list[tuple[Path, Path]]:
    """(repository file, package file) pairs with identical bytes."""
    by_size: dict[int, list[Path]] = defaultdict(list)
    for f in files:
        if f.is_file() and not f.is_symlink() and (size := f.stat().st_size) >= MIN_SIZE:
            by_size[size].append(f)
    hashes: dict[Path, bytes] = {}
    copies = []
    for pkg in packages:
        for dirpath, _dirs, names in os.walk(pkg):
            for name in names:
                p = Path(dirpath) / name
                if p.is_symlink():
                    continue
                candidates = by_size.get(p.stat().st_size)
                if not candidates:
                    continue
                digest = _sha256(p)
                for f in candidates:
                    if f not in hashes:
                        hashes[f] = _sha256(f)
                    if hashes[f] == digest:
                        copies.append((f, p))
    return copies


def test_no_file_is_a_copy_of_a_package_file():
    packages = package_dirs()
    missing = [p.name for p in packages if not p.is_dir()]
    assert not missing, f"node_modules incomplete (run npm ci): {missing}"
    copies = find_copies(repo_files(), packages)
    assert not copies, "copied from npm packages:\n" + "\n".join(
        f"{f.relative_to(ROOT)} == {p.relative_to(ROOT)}" for f, p in copies)


def test_a_planted_copy_is_found(tmp_path):
    pkg = tmp_path / "node_modules" / "pkg" / "src"
    pkg.mkdir(parents=True)
    body = b"// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\ncontract C { uint x; }\n"
    (pkg / "C.sol").write_bytes(body)
    (tmp_path / "copy.sol").write_bytes(body)
    (tmp_path / "edited.sol").write_bytes(body + b"\n")
    (tmp_path / "tiny").write_bytes(b"MIT\n")
    (pkg / "tiny").write_bytes(b"MIT\n")
    files = [tmp_path / n for n in ("copy.sol", "edited.sol", "tiny")]
    copies = find_copies(files, [tmp_path / "node_modules" / "pkg"])
    assert copies == [(tmp_path / "copy.sol", pkg / "C.sol")]
