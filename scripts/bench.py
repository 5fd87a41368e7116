#!/usr/bin/env python3
"""Benchmarks (figures printed, never asserted): on a fresh Anvil with the real Aave V3,
N borrowers; times discovery, one mirror of every account, a full idle step, and the reaction to a
price drop (blocks and seconds from the oracle update to the last liquidation confirmed).

    .venv/bin/python scripts/bench.py [--accounts 300] [--liquidatable 20]
"""
from __future__ import annotations

import argparse
import asyncio
import time

from eth_account import Account

from keeper.chain.signer import Signer
from keeper.config import load_config
from keeper.engine.daemon import Keeper
from keeper.engine.mirror import mirror
from keeper.log import setup_logging
from keeper_devnet.anvil import Anvil
from keeper_devnet.deploy import Deployer
from keeper_devnet.tokens import set_price
from keeper_devnet.world import KEEPER_KEY, build_world, config_text, open_position

BLOCK_TIME = 2  # seconds, for the reaction figure


async def bench(n: int, n_liq: int) -> None:
    setup_logging(level="warning")
    anvil = await Anvil.start(extra=["--accounts", str(n + 10)])
    try:
        d = await Deployer(anvil.url).init()
        t = time.perf_counter()
        world = await build_world(d)
        print(f"world deployed: {time.perf_counter() - t:.2f} s")
        users = world.take_accounts(n)
        t = time.perf_counter()
        for i, u in enumerate(users):
            f = 0.95 if i < n_liq else 0.5  # after a 30% drop: HF 0.76 vs 1.44
            await open_position(d, world, u, {"WETH": 2}, {"USDC": 4_800 * f})
        print(f"{n} positions opened: {time.perf_counter() - t:.2f} s (block {await d.w3.eth.block_number})")
        import tempfile
        from pathlib import Path
        p = Path(tempfile.mkdtemp()) / "b.toml"
        p.write_text(config_text(world, min_profit_usd="0"))
        keeper = Keeper(load_config(p), Signer(Account.from_key(KEEPER_KEY)))
        await keeper.start()
        head = await keeper.chain.block_number()
        r0 = keeper.rpc.requests
        t = time.perf_counter()
        await keeper.discovery.advance(head)
        elapsed_ms = (time.perf_counter() - t) * 1000
        found = set(keeper.adapters[0].users)  # every account in the Pool's logs: the lender too
        others = len(found - set(users))
        print(f"discovery of {len(found & set(users))} of {n} borrowers (and {others} other account(s): the "
              f"lender) over {head} blocks: {elapsed_ms:.0f} ms, {keeper.rpc.requests - r0} HTTP requests")
        for label, all_details in (("health only", False), ("with every balance", True)):
            r0 = keeper.rpc.requests
            t = time.perf_counter()
            await mirror(keeper.adapters, head, all_details=all_details)
            print(f"mirror of {len(found)} accounts ({n} borrowers and the lender; {label}): "
                  f"{(time.perf_counter() - t) * 1000:.0f} ms, "
                  f"{keeper.rpc.requests - r0} HTTP requests")
        t = time.perf_counter()
        await keeper.step(head)
        print(f"idle step: {(time.perf_counter() - t) * 1000:.0f} ms")
        # Reaction, with blocks mined every BLOCK_TIME seconds as on a real chain (not one per tx).
        await d.rpc("evm_setAutomine", [False])
        await d.rpc("evm_setIntervalMining", [BLOCK_TIME])
        weth = world.tokens["WETH"]
        await set_price(d, weth, weth.price * 7 // 10)  # waits for its block
        drop_block = await d.w3.eth.block_number
        t = time.perf_counter()
        await keeper.step(await keeper.chain.block_number())
        sent = time.perf_counter() - t
        await keeper.settle()  # the manager's own task follows the receipts
        elapsed = time.perf_counter() - t
        liq = keeper.recorder.report()["liquidations"]
        blocks = sorted({o["block"] - drop_block for o in liq})
        print(f"reaction ({BLOCK_TIME} s blocks): {len(liq)} liquidations (+ approvals) sent in one step "
              f"({sent:.2f} s) and confirmed {elapsed:.2f} s after the price update's block; mined in block(s) "
              f"{blocks} after it")
        await keeper.close()
        await d.close()
    finally:
        await anvil.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accounts", type=int, default=300)
    ap.add_argument("--liquidatable", type=int, default=20)
    a = ap.parse_args()
    asyncio.run(bench(a.accounts, a.liquidatable))


if __name__ == "__main__":
    main()
