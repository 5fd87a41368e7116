"""``keeper init``: write a config for a chain's main markets from its preset."""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from keeper.errors import ConfigError
from keeper.presets import CHAINS, load_preset, render, select


def add_init_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chain", required=True, choices=CHAINS,
                   help="the chain whose preset to write: " + ", ".join(CHAINS))
    p.add_argument("--protocols", default=None, metavar="KIND[,KIND...]",
                   help="only these protocols (e.g. aave_v3,morpho_blue); default: every one the preset has")
    p.add_argument("--out", type=Path, default=Path("config.toml"), metavar="FILE",
                   help="where to write the config (default: config.toml)")
    p.add_argument("--rpc-url", default="http://127.0.0.1:8545", metavar="URL",
                   help="the node's JSON-RPC URL to write into chain.rpc_url (default: http://127.0.0.1:8545; "
                        "prefer an environment-specific file over a URL with credentials in it)")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")


def run_init(args: argparse.Namespace) -> int:
    from keeper.config import load_config
    preset = load_preset(args.chain)
    kinds = None if args.protocols is None else [k.strip() for k in args.protocols.split(",") if k.strip()]
    if kinds is not None and not kinds:
        raise ConfigError("--protocols: give at least one protocol kind")
    markets = select(preset, kinds)
    out: Path = args.out
    if not out.parent.is_dir():
        raise ConfigError(f"--out: folder {out.parent} does not exist")
    if out.is_dir():
        raise ConfigError(f"--out: {out} is a folder: name the file to write")
    if out.exists() and not args.force:
        raise ConfigError(f"{out} exists: pass --force to overwrite it")
    text = render(preset, markets, rpc_url=args.rpc_url)
    # Check the file loads before it replaces anything (a bad --rpc-url is named here).
    fd, tmp = tempfile.mkstemp(prefix=".keeper-init-", suffix=".toml", dir=out.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        load_config(tmp)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    left = [o.kind for o in preset.omitted if kinds is None or o.kind in kinds]
    print(f"wrote {out}: {preset.chain} (chain id {preset.chain_id}), "
          f"{len(markets)} markets: {', '.join(m.name for m in markets)}")
    if left:
        print(f"not in the {preset.chain} preset (see the file's header): {', '.join(left)}")
    print('mode is "dry-run": rehearse and shadow before setting mode = "live" (README, "Going live")')
    return 0
