#!/usr/bin/env python3
"""Maintainer tool: compile keeper/executor/LiquidationExecutor.sol with the pinned solcjs (after
`npm ci`) into keeper/executor/LiquidationExecutor.json, the artifact the keeper deploys.

  scripts/build_executor.py           write the artifact
  scripts/build_executor.py --check   exit 1 if the shipped artifact is not what would be written
"""
import asyncio
import sys


def main() -> int:
    from keeper_devnet.executor_build import ARTIFACT, build_artifact, render
    text = render(asyncio.run(build_artifact()))
    if "--check" in sys.argv[1:]:
        if not ARTIFACT.exists() or ARTIFACT.read_text() != text:
            print(f"{ARTIFACT.name} is not current: run scripts/build_executor.py")
            return 1
        print(f"{ARTIFACT.name} is current")
        return 0
    ARTIFACT.write_text(text)
    print(f"wrote {ARTIFACT} ({(len(text))} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
