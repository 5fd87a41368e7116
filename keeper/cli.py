"""Command line: keeper run | scan | init | rehearse | shadow | config example | devnet | demo |
executor (deploy | withdraw).

The global flags (--log-json, --log-level) are accepted before or after the subcommand; --config
may be left out when KEEPER_CONFIG names the file."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from keeper.config import load_config
from keeper.config_env import CONFIG_VAR
from keeper.errors import ConfigError, KeeperError, StartupError
from keeper.live.command import add_rehearse_arguments, add_shadow_arguments
from keeper.log import setup_logging
from keeper.presets.command import add_init_arguments, run_init
from keeper.secrets import scrub

if TYPE_CHECKING:
    from keeper.engine.daemon import ScanRow

log = structlog.get_logger()
LEVELS = ["debug", "info", "warning", "error"]


def _global_flags(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The flags every command takes; a subcommand's copy leaves them unset unless given there."""
    p.add_argument("--log-json", action="store_true", help="log JSON lines instead of console text",
                   default=False if defaults else argparse.SUPPRESS)
    p.add_argument("--log-level", choices=LEVELS, help="default: info",
                   default="info" if defaults else argparse.SUPPRESS)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keeper", description="Liquidation keeper for lending and leverage protocols")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _global_flags(p, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_flags(common, defaults=False)
    cfg_help = f"the config file (default: the file ${CONFIG_VAR} names)"
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", parents=[common], help="watch every new block and liquidate until SIGINT/SIGTERM")
    r.add_argument("--config", type=Path, help=cfg_help)
    r.add_argument("--dry-run", action="store_true", help="simulate everything, send nothing")
    s = sub.add_parser("scan", parents=[common], help="one-shot table of every tracked account")
    s.add_argument("--config", type=Path, help=cfg_help)
    s.add_argument("--json", action="store_true")
    add_init_arguments(sub.add_parser("init", parents=[common], help="write a config for a chain's main markets "
                                                                   "(real addresses, each with its source)"))
    add_rehearse_arguments(sub.add_parser(
        "rehearse", parents=[common],
        help="run the keeper on an Anvil fork of the chain (another chain id), after price shocks, "
             "and report predicted vs realised profit per plan"))
    add_shadow_arguments(sub.add_parser(
        "shadow", parents=[common],
        help="follow the chain read-only and report, for every liquidation others make, whether "
             "the keeper would have caught it"))
    c = sub.add_parser("config", parents=[common], help="configuration tools")
    csub = c.add_subparsers(dest="config_command", required=True)
    csub.add_parser("example", parents=[common], help="print the commented example config (every key explained)")
    dv = sub.add_parser("devnet", parents=[common], help="start Anvil with the demo world and write a ready config")
    dv.add_argument("--port", type=int, default=8545)
    dv.add_argument("--config-out", type=Path, default=None)
    dm = sub.add_parser("demo", parents=[common], help="devnet + positions + keeper + price drop, then a report")
    dm.add_argument("--json", action="store_true", help="print one JSON report on stdout")
    dm.add_argument("--execution", choices=["flash", "inventory"], default="flash",
                    help="flash (default): a wallet with no token, liquidations paid with flash liquidity and "
                         "the collateral sold on Uniswap V3; inventory: the wallet pays and keeps the collateral")
    from keeper.executor.commands import add_parser as add_executor_parser
    add_executor_parser(sub)
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("keeper")
    except PackageNotFoundError:
        return "unknown (not installed)"


async def _init(args: argparse.Namespace) -> int:
    return run_init(args)


def _install_stop(stop: asyncio.Event, on_first: Callable[[], None] | None = None) -> None:
    """SIGINT / SIGTERM set ``stop`` (after ``on_first``); a second one exits at once."""
    loop = asyncio.get_running_loop()
    seen: list[int] = []

    def handle(sig: signal.Signals) -> None:
        seen.append(sig)
        if len(seen) > 1:
            log.warning("keeper.exit_now", signal=sig.name,
                        note="second signal: what is in flight stays in the journal")
            os._exit(130)
        log.info("keeper.stopping", signal=sig.name)
        if on_first is not None:
            on_first()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handle, sig)


async def _run(args: argparse.Namespace) -> int:
    """Start, then act on every block until SIGINT / SIGTERM: nothing new is sent from the signal on,
    the step in progress gets keeper.shutdown_seconds to finish (then it is cancelled, a hung
    request with it), and what is in flight is left to the journal for the next start."""
    from keeper.engine.daemon import Keeper, load_signer
    from keeper.store import open_store
    cfg = load_config(args.config)
    store = await open_store(cfg.store)  # the durable index and the journal
    keeper = Keeper(cfg, load_signer(cfg), dry_run=True if args.dry_run else None, store=store)
    stop = asyncio.Event()
    _install_stop(stop, keeper.stop_sending)

    async def work() -> None:
        await keeper.start()
        if cfg.monitor.enabled:
            await keeper.serve_monitor()
        await keeper.run(stop)

    task = asyncio.create_task(work(), name="keeper")
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), cfg.keeper.shutdown_seconds)
            except TimeoutError:
                log.warning("keeper.step_cancelled", after_seconds=cfg.keeper.shutdown_seconds)
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        stopped.cancel()
        try:
            await asyncio.wait_for(keeper.close(), 5)
        except Exception as e:
            log.warning("keeper.close_failed", error=str(e)[:200], error_type=type(e).__name__)
        await store.close()
    log.info("keeper.stopped", outcomes=len(keeper.recorder.outcomes))
    return 0


def _usd(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def _table(rows: Sequence[ScanRow]) -> str:
    """The scan table; with protocols that can pay with flash liquidity, also the configured mode,
    the profit after gas in each mode, the swap route and its quote."""
    modes = any(r.execution for r in rows)
    head = ["protocol", "account", "health", "debt_usd", "best_pair", "profit_usd", "liquidatable", "why"]
    if modes:
        head[6:6] = ["mode", "inventory_usd", "flash_usd", "route", "quoted"]
    body: list[list[str]] = []
    for r in rows:
        row = [r.protocol, r.account, "-" if r.health is None or r.health > 1e6 else f"{r.health:.4f}",
               f"{r.debt_usd:,.2f}", r.pair, _usd(r.expected_profit_usd), "yes" if r.liquidatable else "no", r.why]
        if modes:
            row[6:6] = [r.execution or "-", _usd(r.inventory_profit_usd), _usd(r.flash_profit_usd), r.route or "-",
                        r.quoted or "-"]
        body.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]

    def fmt(row: Sequence[object]) -> str:
        return "  ".join(str(x).ljust(w) for x, w in zip(row, widths))
    return "\n".join([fmt(head)] + [fmt(b) for b in body])


async def _scan(args: argparse.Namespace) -> int:
    from keeper.engine.daemon import Keeper, load_signer
    cfg = load_config(args.config)
    keeper = Keeper(cfg, load_signer(cfg), dry_run=True)
    try:
        await keeper.start()
        rows = await keeper.scan()
    finally:
        await keeper.close()
    if args.json:
        print(json.dumps({"accounts": [asdict(r) for r in rows]}, indent=1))
    else:
        print(_table(rows) if rows else "no accounts with debt")
    return 0


async def _config(args: argparse.Namespace) -> int:
    from keeper.config_example import example_toml
    print(example_toml(), end="")
    return 0


def _devnet_package() -> ModuleType:
    try:
        import keeper_devnet
    except ModuleNotFoundError:
        raise ConfigError("this command needs the keeper-devnet package (the checkout's devnet/ folder: "
                          "run ./scripts/setup, or pip install ./devnet)") from None
    return keeper_devnet


async def _rehearse(args: argparse.Namespace) -> int:
    from keeper.live.command import run_rehearse
    return await run_rehearse(args)


async def _shadow(args: argparse.Namespace) -> int:
    from keeper.live.command import run_shadow
    stop = asyncio.Event()
    _install_stop(stop)
    return await run_shadow(args, stop)


async def _devnet(args: argparse.Namespace) -> int:
    _devnet_package()
    from keeper_devnet.world import serve_devnet
    stop = asyncio.Event()
    _install_stop(stop)
    await serve_devnet(args.port, args.config_out, stop)
    return 0


async def _demo(args: argparse.Namespace) -> int:
    _devnet_package()
    from keeper_devnet.demo import print_report, run_demo
    report = await run_demo(execution=args.execution)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report)
    return 0 if not report["reverted"] else 1


async def _executor(args: argparse.Namespace) -> int:
    from keeper.engine.daemon import load_signer
    from keeper.executor.commands import run
    return await run(args, load_signer)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(json_lines=args.log_json, level=args.log_level)
    handlers: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
        "run": _run, "scan": _scan, "init": _init, "rehearse": _rehearse, "shadow": _shadow, "config": _config,
        "devnet": _devnet, "demo": _demo, "executor": _executor}
    handler = handlers[args.command]
    try:
        code = asyncio.run(handler(args))
        if args.command == "run":
            # The loop (and its signal handlers) is gone; the interpreter still has to finish. A Ctrl-C
            # now exits at once, as a second one does during the run, not through a KeyboardInterrupt.
            signal.signal(signal.SIGINT, lambda *_: os._exit(130))
        return code
    except (ConfigError, StartupError) as e:
        print(f"keeper: error: {scrub(str(e))}", file=sys.stderr)
        return 2
    except KeeperError as e:  # an RPC failure the command could not get past
        print(f"keeper: error: {e}", file=sys.stderr)
        return 1
    except (OSError, TimeoutError, aiohttp.ClientError) as e:  # connection trouble the RPC layer let through
        print(f"keeper: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
