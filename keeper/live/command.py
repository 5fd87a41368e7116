"""``keeper rehearse`` and ``keeper shadow``: their flags and how they run."""
from __future__ import annotations

import argparse
import asyncio
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from eth_utils import is_hex_address, to_checksum_address

from keeper.errors import ConfigError
from keeper.live.anvil import ANVIL_ENV, check_reachable


def _block(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a block number: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"a block number is >= 0, got {n}")
    return n


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _seconds(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not x >= 1:
        raise argparse.ArgumentTypeError(f"Anvil mines at most one block a second: got {x}")
    return x


def _ether(text: str) -> int:
    try:
        x = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r}") from None
    if x < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return int(x * 10**18)


def _address(text: str) -> str:
    if not is_hex_address(text):
        raise argparse.ArgumentTypeError(f"not an address: {text!r}")
    return to_checksum_address(text)


def add_rehearse_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, metavar="FILE", help="the keeper's config file")
    p.add_argument("--fork-url", required=True, metavar="URL",
                   help="JSON-RPC URL of the real chain to fork (read for its chain id and the fork block, then "
                        "given only to Anvil; the keeper and its signer talk to the fork alone)")
    p.add_argument("--fork-block", type=_block, default=None, metavar="N",
                   help="block to fork at (default: the chain's head)")
    p.add_argument("--blocks", type=_positive, default=10, metavar="K",
                   help="how many fork blocks the keeper runs for after the shocks (default: 10)")
    p.add_argument("--price-shock", action="append", default=[], metavar="TOKEN=PCT",
                   help="move a token's price on the fork, e.g. WETH=-30%% (a symbol or token address; repeat for "
                        "several): every Chainlink-style feed a configured protocol prices it with answers the "
                        "shocked price, and every Pyth feed it reads from Pyth's storage holds it (written in "
                        "storage; a Pyth feed id 0x<64 hex> names a feed directly). Pyth prices the keeper fetches "
                        "live are not shocked")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    p.add_argument("--anvil", default=None, metavar="PATH",
                   help=f"the anvil binary (default: ${ANVIL_ENV}, else anvil on PATH, else the checkout's npm one)")
    p.add_argument("--fork-chain-id", type=_positive, default=None, metavar="ID",
                   help="chain id of the fork (default 1337133701); must differ from the real chain's")
    p.add_argument("--block-time", type=_seconds, default=None, metavar="SECONDS",
                   help="the fork's block interval (default: the real chain's mean over its last 100 blocks, "
                        "at least 1 s)")
    p.add_argument("--fund-native", type=_ether, default=10 * 10**18, metavar="ETHER",
                   help="native balance the keeper's address gets on the fork when it holds less (default: 10)")
    p.add_argument("--throwaway-key", action="store_true",
                   help="rehearse with a fresh key instead of the config's signer (no key needed; funded on the fork)")


def add_shadow_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, metavar="FILE",
                   help="the keeper's config file (its chain.rpc_url is followed; no key is read)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    p.add_argument("--blocks", type=_positive, default=None, metavar="K",
                   help="follow the chain's head for K blocks, then report (default: until SIGINT/SIGTERM)")
    p.add_argument("--from-block", type=_block, default=None, metavar="N",
                   help="replay history from block N (with --to-block; needs a node that serves old state)")
    p.add_argument("--to-block", type=_block, default=None, metavar="M",
                   help="replay history up to block M (default start: M alone)")
    p.add_argument("--wallet", type=_address, default=None, metavar="ADDRESS",
                   help="size the plans to this address's token balances (default: an unlimited wallet)")


def _print(report_json: dict[str, Any], text: str, as_json: bool) -> None:
    print(json.dumps(report_json, indent=1) if as_json else text)


async def run_rehearse(args: argparse.Namespace) -> int:
    from keeper.config import load_config
    from keeper.live.fork import Shock
    from keeper.live.rehearse import Options, rehearse
    cfg = load_config(args.config)
    opts = Options(fork_url=args.fork_url, fork_block=args.fork_block, blocks=args.blocks,
                   shocks=tuple(Shock.parse(s) for s in args.price_shock), anvil=args.anvil,
                   fork_chain_id=args.fork_chain_id, block_time=args.block_time, fund_native_wei=args.fund_native,
                   throwaway_key=args.throwaway_key)
    report = await rehearse(cfg, opts)
    _print(report.to_json(), report.text(), args.json)
    return 1 if report.reverted or report.step_errors else 0


async def run_shadow(args: argparse.Namespace, stop: asyncio.Event) -> int:
    from keeper.config import load_config
    from keeper.live.shadow import shadow
    if args.from_block is not None and args.to_block is None:
        raise ConfigError("--from-block replays history: give --to-block too")
    if args.to_block is not None and args.blocks is not None:
        raise ConfigError("--blocks follows the head; --to-block replays history: give one of them")
    cfg = load_config(args.config)
    await check_reachable(cfg.chain.rpc_url, "chain.rpc_url")
    report = await shadow(cfg, from_block=args.from_block, to_block=args.to_block, blocks=args.blocks,
                          wallet=args.wallet, stop=stop)
    _print(report.to_json(), report.text(), args.json)
    return 0
