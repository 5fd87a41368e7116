#!/usr/bin/env python3
"""Benchmark (figures printed, never asserted): this keeper against a naive keeper written here, on
one Anvil chain with the real Aave V3 and N borrowers.

    .venv/bin/python scripts/bench.py --positions 10000 [--liquidatable 20] [--json]

Steps: deploy the world; open N positions in bulk (JSON-RPC batches of eth_sendTransaction from
impersonated accounts, many per block: collateral supplied on the borrowers' behalf, then each
borrows); take a snapshot; switch to 2-second interval mining; then for each contender (this keeper,
then the baseline after reverting to the snapshot) in its own process: cold start (discovery and a
first full step), a restart, idle blocks, a 30% WETH price drop, until every liquidatable account is
liquidated (or a timeout). The baseline is the naive keeper: every block, one getUserAccountData
eth_call per account (sent in JSON-RPC batches of 100), liquidationCall for every health factor < 1.

Figures per contender:
  p50_ms / p99_ms       first sight of the price-drop block (its newHeads message, or the poll that
                        saw it) -> eth_sendRawTransaction of each liquidation answered by the node
  rpc_per_block         HTTP requests (a JSON-RPC batch counts once) per block handled, nothing changed
  bytes_per_block       JSON bytes sent and received per such block
  lag_blocks_first/last block of the first/last liquidation minus the block of the price update
  peak_rss_mb           the contender process's peak resident memory
  restart_ready_s       a restart: process objects built -> first full step done
  cold_discovery_s      finding every account from the chain's logs, nothing known
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BLOCK_TIME = 2
IDLE_STEPS = 3  # steps with nothing changed before the price drop
DROP = 7, 10  # the WETH price becomes 7/10 of what it was
REACT_TIMEOUT_S = 180.0
CHUNK = 1000  # positions per bulk block
SAFE = (0.1, 60.0)  # WETH collateral, USDC debt of a safe position (health ~2.9 after the drop)
RISKY = (2.0, 4560.0)  # ... of a position the drop makes liquidatable (health ~0.76 after it)

SEL_MINT = "0x40c10f19"  # mint(address,uint256) of the devnet's TestERC20
SEL_APPROVE = "0x095ea7b3"  # approve(address,uint256)
SEL_SUPPLY = "0x617ba037"  # Pool.supply(address,uint256,address,uint16)
SEL_BORROW = "0xa415bcad"  # Pool.borrow(address,uint256,uint256,uint16,address)
SEL_ACCOUNT_DATA = "0xbf92857c"  # Pool.getUserAccountData(address)
SEL_LIQUIDATE = "0x00a718a9"  # Pool.liquidationCall(address,address,address,uint256,bool)
SEL_UPDATE_ANSWER = "0xa87a20ce"  # MockV3Aggregator.updateAnswer(int256)
# keccak of Borrow(address,address,address,uint256,uint8,uint256,uint16) and
# LiquidationCall(address,address,address,uint256,uint256,address,bool), the Pool's events
TOPIC_BORROW = "0xb3d084820fb1a9decffb176436bd02558d15fac9b0ddfed8c465bc7359d7dce0"
TOPIC_LIQUIDATION = "0xe413a321e8681d831f4dbccbca790d2952b56f977908e45be37335533e005286"
MAX_UINT = 2**256 - 1
FIELDS = ("p50_ms", "p99_ms", "rpc_per_block", "bytes_per_block", "lag_blocks_first", "lag_blocks_last",
          "peak_rss_mb", "restart_ready_s", "cold_discovery_s")


def err(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def word(x: int | str) -> str:
    return (f"{x:064x}" if isinstance(x, int) else x.lower().removeprefix("0x").rjust(64, "0"))


def calldata(sel: str, *args: int | str) -> str:
    return sel + "".join(word(a) for a in args)


def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]  # nearest rank


class Node:
    """Raw JSON-RPC over one aiohttp session (the builder's and the parent's path: no web3 layer)."""

    def __init__(self, url: str):
        import aiohttp
        self.url = url
        self.session = aiohttp.ClientSession()
        self.id = 0

    async def close(self) -> None:
        await self.session.close()

    async def call(self, method: str, params: list[Any]) -> Any:
        self.id += 1
        async with self.session.post(self.url, json={"jsonrpc": "2.0", "id": self.id, "method": method,
                                                     "params": params}) as r:
            out = await r.json(content_type=None)
        if "error" in out:
            raise RuntimeError(f"{method}: {out['error']}")
        return out["result"]

    async def batch(self, reqs: list[tuple[str, list[Any]]]) -> list[Any]:
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(reqs)]
        async with self.session.post(self.url, json=body) as r:
            out = await r.json(content_type=None)
        if not isinstance(out, list):
            raise RuntimeError(f"batch refused: {str(out)[:300]}")
        out.sort(key=lambda x: x["id"])
        bad = [x["error"] for x in out if "error" in x]
        if bad:
            raise RuntimeError(f"{len(bad)} of {len(reqs)} failed, first: {bad[0]}")
        return [x["result"] for x in out]

    async def mine_checked(self, expected: int, what: str) -> None:
        await self.call("evm_mine", [])
        receipts = await self.call("eth_getBlockReceipts", ["latest"])
        ok = sum(1 for r in receipts if r["status"] == "0x1")
        if len(receipts) != expected or ok != expected:
            raise RuntimeError(f"{what}: {ok} of {expected} transactions succeeded in block "
                               f"(block has {len(receipts)})")


# ---------------------------------------------------------------- building the chain

async def build(n: int, n_liq: int) -> tuple[Any, Any, Any, dict[str, Any], list[str]]:
    from keeper_devnet.anvil import Anvil
    from keeper_devnet.deploy import Deployer
    from keeper_devnet.world import build_world
    # At most 50 block states in memory: with every state kept, Anvil held 19 GB at 100k positions
    # (the keeper reads at the head, and the logs and receipts of every block are kept anyway).
    anvil = await Anvil.start(extra=["--gas-limit", "1000000000", "--accounts", "20", "--prune-history", "50"])
    d = await Deployer(anvil.url).init()
    t = time.perf_counter()
    world = await build_world(d, lender_liquidity_usd=max(5_000_000, n * 200))
    err(f"world deployed: {time.perf_counter() - t:.1f} s")
    node = Node(anvil.url)
    pool, weth, usdc = world.aave.pool, world.tokens["WETH"], world.tokens["USDC"]
    users = [f"0x{(0xBE << 152) | i:040x}" for i in range(n)]
    risky = set(users[:: max(1, n // n_liq)][:n_liq])
    funder = world.admin
    t = time.perf_counter()
    await node.call("anvil_autoImpersonateAccount", [True])
    await node.call("evm_setAutomine", [False])
    total_weth = sum(weth.units(RISKY[0] if u in risky else SAFE[0]) for u in users)
    nonce = int(await node.call("eth_getTransactionCount", [funder, "pending"]), 16)
    fee = {"maxFeePerGas": hex(20 * 10**9), "maxPriorityFeePerGas": hex(10**9)}

    def tx(frm: str, to: str, data: str, gas: int, nonce: int | None = None) -> tuple[str, list[Any]]:
        t: dict[str, Any] = {"from": frm, "to": to, "data": data, "gas": hex(gas), **fee}
        if nonce is not None:
            t["nonce"] = hex(nonce)
        return "eth_sendTransaction", [t]

    await node.batch([tx(funder, weth.address, calldata(SEL_MINT, funder, total_weth), 200_000, nonce),
                      tx(funder, weth.address, calldata(SEL_APPROVE, pool, MAX_UINT), 200_000, nonce + 1)])
    nonce += 2
    await node.mine_checked(2, "mint and approve")
    for i in range(0, n, CHUNK):
        chunk = users[i:i + CHUNK]
        await node.batch([("anvil_setBalance", [u, hex(10**18)]) for u in chunk])
        sup = []
        for u in chunk:
            amt = weth.units(RISKY[0] if u in risky else SAFE[0])
            sup.append(tx(funder, pool, calldata(SEL_SUPPLY, weth.address, amt, u, 0), 400_000, nonce))
            nonce += 1
        await node.batch(sup)
        await node.mine_checked(len(chunk), "supply on behalf")
        await node.batch([tx(u, pool, calldata(SEL_BORROW, usdc.address,
                                                usdc.units(RISKY[1] if u in risky else SAFE[1]), 2, 0, u), 600_000)
                          for u in chunk])
        await node.mine_checked(len(chunk), "borrow")
        done = i + len(chunk)
        el = time.perf_counter() - t
        err(f"positions: {done}/{n} ({done / el:.0f}/s, ETA {el / done * (n - done):.0f} s)")
    await node.call("anvil_autoImpersonateAccount", [False])
    await node.call("evm_setAutomine", [True])
    build_s = time.perf_counter() - t
    head = int(await node.call("eth_blockNumber", []), 16)
    err(f"{n} positions ({len(risky)} to be made liquidatable) opened in {build_s:.1f} s; chain at block {head}")
    await node.close()
    info = {"build_s": round(build_s, 1), "blocks": head}
    return anvil, d, world, info, sorted(risky)


# ---------------------------------------------------------------- contenders (child processes)

class Counting:
    """A Transport wrapper: counts round trips and JSON bytes, times eth_sendRawTransaction answers."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.requests = 0
        self.bytes = 0
        self.sends: list[tuple[str, float]] = []  # (tx hash, monotonic time the node answered)

    async def send(self, method: str, params: list[Any]) -> Any:
        self.requests += 1
        r = await self.inner.send(method, params)
        self.bytes += len(json.dumps(params)) + len(json.dumps(r)) + len(method) + 40
        if method == "eth_sendRawTransaction" and isinstance(r, dict) and "result" in r:
            self.sends.append((r["result"], time.monotonic()))
        return r

    async def send_batch(self, reqs: list[tuple[str, list[Any]]]) -> Any:
        self.requests += 1
        r = await self.inner.send_batch(reqs)
        now = time.monotonic()
        self.bytes += len(json.dumps(reqs)) + len(json.dumps(r)) + 40 * len(reqs)
        if isinstance(r, list):
            for (m, _), x in zip(reqs, r, strict=False):
                if m == "eth_sendRawTransaction" and isinstance(x, dict) and "result" in x:
                    self.sends.append((x["result"], now))
        return r

    async def close(self) -> None:
        await self.inner.close()


MARK = "@bench "  # the contender's report lines on stdout; anything else there is passed on to stderr


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def emit(**kw: Any) -> None:
    print(MARK + json.dumps(kw), flush=True)


async def wait_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "stop":
            stop.set()
            return


async def run_keeper(spec: dict[str, Any]) -> None:
    from eth_account import Account

    from keeper.chain.signer import Signer
    from keeper.config import load_config
    from keeper.engine.daemon import Keeper
    from keeper.log import setup_logging
    setup_logging(level="error")
    cfg = load_config(Path(spec["config"]))
    signer = Signer(Account.from_key(spec["key"]))

    def make() -> tuple[Keeper, Counting]:
        k = Keeper(cfg, signer)
        c = Counting(k.rpc.transport)
        k.rpc.transport = c
        return k, c

    t = time.perf_counter()
    keeper, counter = make()
    await keeper.start()
    head = await keeper.chain.block_number()
    t1 = time.perf_counter()
    await keeper.discovery.advance(head, keeper.chain)  # with the chain: the index and its checkpoint are stored
    cold_discovery = time.perf_counter() - t1
    await keeper.step(head)
    cold_ready = time.perf_counter() - t
    await keeper.close()
    emit(phase="cold", cold_discovery_s=cold_discovery, cold_ready_s=cold_ready)
    profile = Profiles(spec.get("profile"))
    t = time.perf_counter()
    with profile("restart"):
        keeper, counter = make()  # a restart: with a durable index, this one resumes from it
        await keeper.start()
        await keeper.step(await keeper.chain.block_number())
    restart = time.perf_counter() - t
    emit(phase="ready", restart_ready_s=restart, block=keeper.last_block)

    inner_step = keeper.step

    async def step(block: int) -> Any:
        r0, b0, t0 = counter.requests, counter.bytes, time.perf_counter()
        with profile("steps"):
            out = await inner_step(block)
        emit(phase="step", block=block, requests=counter.requests - r0, bytes=counter.bytes - b0,
             ms=(time.perf_counter() - t0) * 1000)
        return out

    keeper.step = step  # type: ignore[method-assign]
    stop = asyncio.Event()
    waiter = asyncio.create_task(wait_stop(stop))
    await keeper.run(stop)
    waiter.cancel()
    profile.dump()
    emit(phase="result", sends=counter.sends, seen=keeper.heads.seen, cold_discovery_s=cold_discovery,
         restart_ready_s=restart, peak_rss_mb=peak_rss_mb(),
         ws_connects=keeper.heads.ws_connects)
    await keeper.close()


class Profiles:
    """--profile DIR: cProfile of the keeper's restart and of its steps (one profile each, summed over
    the steps), written as DIR/<name>.prof and the 25 costliest functions as DIR/<name>.txt."""

    def __init__(self, directory: str | None):
        import cProfile
        self.dir = Path(directory) if directory else None
        self.profiles: dict[str, cProfile.Profile] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.dir is None:
            yield
            return
        import cProfile
        p = self.profiles.setdefault(name, cProfile.Profile())
        p.enable()
        try:
            yield
        finally:
            p.disable()

    def dump(self) -> None:
        import io
        import pstats
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        for name, p in self.profiles.items():
            p.dump_stats(str(self.dir / f"{name}.prof"))
            text = io.StringIO()
            pstats.Stats(p, stream=text).sort_stats("cumulative").print_stats(25)
            (self.dir / f"{name}.txt").write_text(text.getvalue())


class Naive:
    """The baseline: every block, getUserAccountData of every known account (one eth_call each, in
    JSON-RPC batches of 100), and liquidationCall (all of the debt the Pool allows) below health 1."""

    def __init__(self, spec: dict[str, Any]):
        from eth_account import Account

        from keeper.chain.rpc import HttpTransport, Rpc
        self.spec = spec
        self.counter = Counting(HttpTransport(spec["url"]))
        self.rpc = Rpc(transport=self.counter)
        self.account = Account.from_key(spec["key"])
        self.users: list[str] = []
        self.sent: dict[str, int] = {}  # user -> block of our liquidation
        self.nonce = 0
        self.call_errors = 0

    async def block_number(self) -> int:
        return int(await self.rpc.request("eth_blockNumber", []), 16)

    async def discover(self, head: int) -> None:
        users: set[str] = set()
        for lo in range(0, head + 1, 5000):
            logs = await self.rpc.request("eth_getLogs", [{"address": self.spec["pool"], "topics": [TOPIC_BORROW],
                                                           "fromBlock": hex(lo), "toBlock": hex(min(head, lo + 4999))}])
            users.update("0x" + lg["topics"][2][-40:] for lg in logs)
        self.users = sorted(users)
        self.nonce = int(await self.rpc.request("eth_getTransactionCount", [self.account.address, "pending"]), 16)

    async def step(self, block: int) -> None:
        pool = self.spec["pool"]
        tag = hex(block)
        low: list[str] = []
        for i in range(0, len(self.users), 100):
            chunk = self.users[i:i + 100]
            res = await self.rpc.batch([("eth_call", [{"to": pool, "data": calldata(SEL_ACCOUNT_DATA, u)}, tag])
                                        for u in chunk], raise_errors=False)
            for u, r in zip(chunk, res, strict=True):
                if isinstance(r, Exception):
                    self.call_errors += 1  # a reverted read (seen after liquidations): skipped this block
                    continue
                if int(r[2 + 5 * 64: 2 + 6 * 64], 16) < 10**18:  # healthFactor, the sixth word
                    low.append(u)
        for u in low:
            if u in self.sent and block < self.sent[u] + 3:
                continue  # sent already; retried only if still unhealthy 3 blocks later
            tx = {"to": pool, "data": calldata(SEL_LIQUIDATE, self.spec["weth"], self.spec["usdc"], u, MAX_UINT, 0),
                  "gas": 1_500_000, "maxFeePerGas": 50 * 10**9, "maxPriorityFeePerGas": 2 * 10**9,
                  "nonce": self.nonce, "chainId": self.spec["chain_id"], "value": 0, "type": 2}
            raw = self.account.sign_transaction(tx).raw_transaction
            await self.rpc.request("eth_sendRawTransaction", ["0x" + raw.hex().removeprefix("0x")])
            self.nonce += 1
            self.sent[u] = block


async def run_baseline(spec: dict[str, Any]) -> None:
    from keeper.chain.heads import HeadSource
    from keeper.log import setup_logging
    setup_logging(level="error")

    async def start() -> tuple[Naive, float, int]:
        naive = Naive(spec)
        head = await naive.block_number()
        t1 = time.perf_counter()
        await naive.discover(head)
        d = time.perf_counter() - t1
        await naive.step(head)
        return naive, d, head

    t = time.perf_counter()
    naive, cold_discovery, _ = await start()
    emit(phase="cold", cold_discovery_s=cold_discovery, cold_ready_s=time.perf_counter() - t)
    await naive.rpc.close()
    t = time.perf_counter()
    naive, _, last = await start()  # a restart: the naive keeper keeps nothing
    restart = time.perf_counter() - t
    emit(phase="ready", restart_ready_s=restart, block=last)
    stop = asyncio.Event()
    waiter = asyncio.create_task(wait_stop(stop))
    async with HeadSource(naive.block_number, spec["ws_url"], 1.0) as heads:
        while not stop.is_set() and (head := await heads.next(stop)) is not None:
            if head.number <= last:
                continue
            r0, b0, t0 = naive.counter.requests, naive.counter.bytes, time.perf_counter()
            try:
                await naive.step(head.number)
            except Exception as e:  # like the keeper: log, and carry on with the next block
                err(f"baseline: block {head.number} failed: {type(e).__name__}: {str(e)[:200]}")
            last = head.number
            emit(phase="step", block=head.number, requests=naive.counter.requests - r0,
                 bytes=naive.counter.bytes - b0, ms=(time.perf_counter() - t0) * 1000)
        seen = heads.seen
        ws_connects = heads.ws_connects
    waiter.cancel()
    emit(phase="result", sends=naive.counter.sends, seen=seen, cold_discovery_s=cold_discovery,
         restart_ready_s=restart, peak_rss_mb=peak_rss_mb(),
         ws_connects=ws_connects, call_errors=naive.call_errors)
    await naive.rpc.close()


# ---------------------------------------------------------------- the parent: one contender's run

async def contend(role: str, spec_path: Path, node: Node, d: Any, world_weth: Any, spec: dict[str, Any],
                  n_liq: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "devnet"),
                                                        os.environ.get("PYTHONPATH", "")])}
    cwd = tempfile.mkdtemp(prefix=f"bench-{role}-")  # a fresh directory: nothing kept from an earlier run
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).resolve()), "--role", role, "--spec", str(spec_path), cwd=cwd, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=64 << 20)
    assert proc.stdout is not None and proc.stdin is not None
    msgs: dict[str, Any] = {}
    steps: list[dict[str, Any]] = []

    async def read() -> dict[str, Any]:
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{role} process ended early (exit {await proc.wait()})")
        if not line.startswith(MARK.encode()):
            err(line.decode(errors="replace").rstrip())
            return {"phase": "other"}
        m = json.loads(line[len(MARK):])
        if m["phase"] == "step":
            steps.append(m)
            err(f"  {role}: block {m['block']}: {m['ms']:.0f} ms, {m['requests']} requests")
        else:
            msgs[m["phase"]] = m
        return m

    t = time.perf_counter()
    while "ready" not in msgs:
        await read()
    cold = msgs["cold"]
    err(f"  {role}: cold start {cold['cold_ready_s']:.1f} s (discovery {cold['cold_discovery_s']:.2f} s), "
        f"restart ready {msgs['ready']['restart_ready_s']:.1f} s")
    ready_block = msgs["ready"]["block"]
    while sum(1 for s in steps if s["block"] > ready_block) < IDLE_STEPS:
        await read()
    idle = [s for s in steps if s["block"] > ready_block]
    # the price drop, sent as the chain's admin; its block is the reference
    new_price = world_weth.price * DROP[0] // DROP[1]
    h = await node.call("eth_sendTransaction", [{"from": spec["admin"], "to": world_weth.feed, "gas": hex(200_000),
                                                 "data": calldata(SEL_UPDATE_ANSWER, new_price)}])
    reader = asyncio.create_task(read())
    while True:
        rc = await node.call("eth_getTransactionReceipt", [h])
        if rc:
            break
        await asyncio.sleep(0.05)
    drop_block = int(rc["blockNumber"], 16)
    err(f"  {role}: WETH price -30% in block {drop_block}")
    liquidated: dict[str, tuple[int, str]] = {}
    t = time.perf_counter()
    while time.perf_counter() - t < REACT_TIMEOUT_S:
        if reader.done():
            reader.result()
            reader = asyncio.create_task(read())
        logs = await node.call("eth_getLogs", [{"address": spec["pool"], "topics": [TOPIC_LIQUIDATION],
                                                "fromBlock": hex(drop_block), "toBlock": "latest"}])
        for lg in logs:
            liquidated.setdefault("0x" + lg["topics"][3][-40:], (int(lg["blockNumber"], 16), lg["transactionHash"]))
        if len(liquidated) >= n_liq:
            break
        await asyncio.wait({reader}, timeout=0.5)
    err(f"  {role}: {len(liquidated)} of {n_liq} accounts liquidated")
    proc.stdin.write(b"stop\n")
    await proc.stdin.drain()
    while "result" not in msgs:
        if reader.done():
            reader.result()
            reader = asyncio.create_task(read())
        await asyncio.wait({reader}, timeout=1)
    await proc.wait()
    res = msgs["result"]
    seen = {int(k): v for k, v in res["seen"].items()}
    saw = min((v for k, v in seen.items() if k >= drop_block), default=None)
    sends = dict(res["sends"])
    liq_hashes = {hsh for _, hsh in liquidated.values()}
    lat = [(sends[x] - saw) * 1000 for x in liq_hashes if x in sends and saw is not None]
    blocks = [b for b, _ in liquidated.values()]
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    out = {
        "p50_ms": round(p50, 1) if p50 is not None else None,
        "p99_ms": round(p99, 1) if p99 is not None else None,
        "rpc_per_block": round(sum(s["requests"] for s in idle) / len(idle), 1),
        "bytes_per_block": round(sum(s["bytes"] for s in idle) / len(idle)),
        "lag_blocks_first": min(blocks) - drop_block if blocks else None,
        "lag_blocks_last": max(blocks) - drop_block if blocks else None,
        "peak_rss_mb": round(res["peak_rss_mb"], 1),
        "restart_ready_s": round(res["restart_ready_s"], 2),
        "cold_discovery_s": round(res["cold_discovery_s"], 3),
        "liquidated": len(liquidated),
        "liquidatable": n_liq,
        "idle_step_ms": round(sum(s["ms"] for s in idle) / len(idle)),
        "heads_via_ws": res["ws_connects"] > 0,
    }
    return out


async def bench(n: int, n_liq: int, profile: Path | None = None, baseline_too: bool = True) -> dict[str, Any]:
    from keeper_devnet.world import KEEPER_ADDRESS, KEEPER_KEY, config_text
    anvil, d, w, info, risky = await build(n, n_liq)
    try:
        node = Node(anvil.url)
        tmp = Path(tempfile.mkdtemp(prefix="bench-"))
        cfg = config_text(w, min_profit_usd="0").replace(
            "[chain]\n", f'[chain]\nws_url = "ws://127.0.0.1:{anvil.port}"\n', 1)
        (tmp / "keeper.toml").write_text(cfg)
        weth, usdc = w.tokens["WETH"], w.tokens["USDC"]
        spec = {"config": str(tmp / "keeper.toml"), "key": KEEPER_KEY, "url": anvil.url,
                "ws_url": f"ws://127.0.0.1:{anvil.port}", "pool": w.aave.pool, "weth": weth.address,
                "usdc": usdc.address, "chain_id": w.chain_id, "admin": w.admin,
                "profile": str(profile.resolve()) if profile else None}
        spec_path = tmp / "spec.json"
        spec_path.write_text(json.dumps(spec))
        snap = await node.call("evm_snapshot", [])
        await node.call("evm_setIntervalMining", [BLOCK_TIME])
        err(f"keeper: running ({BLOCK_TIME} s blocks)")
        keeper = await contend("keeper", spec_path, node, d, weth, spec, len(risky))
        if not baseline_too:
            await node.close()
            await d.close()
            return {"positions": n, "keeper": keeper, "baseline": None, "build": info}
        await node.call("evm_setIntervalMining", [0])
        await node.call("anvil_dropAllTransactions", [])
        await node.call("evm_revert", [snap])
        # the baseline's allowance for liquidationCall, set up before its run (not timed)
        await node.call("evm_setAutomine", [True])
        await node.call("eth_sendTransaction", [{"from": KEEPER_ADDRESS, "to": usdc.address, "gas": hex(100_000),
                                                 "data": calldata(SEL_APPROVE, w.aave.pool, MAX_UINT)}])
        await node.call("evm_setIntervalMining", [BLOCK_TIME])
        err(f"baseline: running ({BLOCK_TIME} s blocks)")
        baseline = await contend("baseline", spec_path, node, d, weth, spec, len(risky))
        await node.call("evm_setIntervalMining", [0])
        await node.close()
        await d.close()
    finally:
        await anvil.stop()
    return {"positions": n, "keeper": keeper, "baseline": baseline, "build": info}


def table(doc: dict[str, Any]) -> str:
    rows = [*FIELDS, "liquidated", "idle_step_ms", "heads_via_ws"]
    lines = [f"positions: {doc['positions']} (built in {doc['build']['build_s']} s, {doc['build']['blocks']} blocks)",
             f"{'':18} {'keeper':>12} {'baseline':>12}"]
    base = doc["baseline"] or {}
    for r in rows:
        lines.append(f"{r:18} {doc['keeper'][r]!s:>12} {base.get(r, '-')!s:>12}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--positions", type=int, default=1000, help="borrowers to open (default 1000)")
    ap.add_argument("--liquidatable", type=int, default=20, help="how many of them the price drop makes liquidatable")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="write cProfile profiles of the keeper's restart and steps to DIR (figures then include "
                         "the profiler's overhead)")
    ap.add_argument("--no-baseline", action="store_true", help="run only this keeper (profiling)")
    ap.add_argument("--role", choices=["keeper", "baseline"], help=argparse.SUPPRESS)
    ap.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.role:
        spec = json.loads(a.spec.read_text())
        asyncio.run(run_keeper(spec) if a.role == "keeper" else run_baseline(spec))
        return
    if a.positions < 1 or not 1 <= a.liquidatable <= a.positions:
        ap.error("--positions must be >= 1 and --liquidatable between 1 and --positions")
    doc = asyncio.run(bench(a.positions, a.liquidatable, a.profile, not a.no_baseline))
    print(json.dumps(doc) if a.json else table(doc))


if __name__ == "__main__":
    main()
