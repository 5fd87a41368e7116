#!/usr/bin/env python3
"""Maintainer tool: writes abis/<folder>/*.json, the functions, events and errors the keeper uses,
taken verbatim from the protocols' published artifacts in node_modules (run after `npm ci`). Each
protocol's devnet folder (devnet/keeper_devnet/protocols/<kind>/) declares its files.

  scripts/extract_abis.py           write abis/
  scripts/extract_abis.py --check   exit 1 naming every file that differs from what would be written
"""
import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render(entries: list) -> str:
    return json.dumps(entries, indent=1) + "\n"


def main() -> int:
    from keeper_devnet.abi_extract import extract_all
    check = "--check" in sys.argv[1:]
    wanted = asyncio.run(extract_all())
    differ = []
    for folder, files in wanted.items():
        for name, entries in files.items():
            path = ROOT / "abis" / folder / f"{name}.json"
            text = render(entries)
            if check:
                if not path.exists() or path.read_text() != text:
                    differ.append(str(path.relative_to(ROOT)))
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"abis/{folder}/{name}.json: {len(entries)} entries")
    if check:
        shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "abis").glob("*/*.json")}
        expected = {f"abis/{f}/{n}.json" for f, files in wanted.items() for n in files}
        differ += sorted(shipped - expected)  # files nothing declares
        if differ:
            print("differ from the extraction: " + ", ".join(differ))
            return 1
        print(f"abis/ matches the extraction ({len(expected)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
