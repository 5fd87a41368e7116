"""The keeper: start-up checks, then per block discover -> mirror -> price -> rank -> simulate ->
send -> record, until told to stop."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from keeper.chain.client import Chain
from keeper.chain.fees import GWEI, current_fees
from keeper.chain.rpc import Rpc
from keeper.chain.sender import Sender
from keeper.chain.signer import Signer
from keeper.config import Config
from keeper.engine.discover import Discovery
from keeper.engine.execute import Executor, Limits
from keeper.engine.mirror import mirror
from keeper.engine.rank import gas_cost_usd, rank
from keeper.engine.record import Outcome, Recorder, usd
from keeper.errors import StartupError
from keeper.oracles.chainlink import ChainlinkFeed
from keeper.protocols import build_adapter
from keeper.protocols.base import USD, Adapter, Services

log = structlog.get_logger()


def load_signer(cfg: Config) -> Signer:
    s = cfg.signer
    return Signer.from_env(s.private_key_env) if s.private_key_env else Signer.from_keystore(s.keystore, s.password_env)


@dataclass
class ScanRow:
    protocol: str
    account: str
    health: float | None
    debt_usd: float
    pair: str
    expected_profit_usd: float | None
    liquidatable: bool
    why: str


class Keeper:
    def __init__(self, cfg: Config, signer: Signer, *, dry_run: bool | None = None):
        self.cfg = cfg
        self.signer = signer
        self.dry_run = cfg.keeper.mode == "dry-run" if dry_run is None else dry_run
        self.rpc = Rpc(cfg.chain.rpc_url)
        self.chain = Chain(self.rpc, multicall_address=cfg.chain.multicall_address,
                           log_chunk_blocks=cfg.chain.log_chunk_blocks)
        self.pull_oracle = None
        if cfg.pull_oracle is not None:
            from keeper.oracles.pull import build_pull_oracle
            self.pull_oracle = build_pull_oracle(cfg.pull_oracle, self.chain)
        services = Services(liquidator=signer.address, pull_oracle=self.pull_oracle)
        self.adapters: list[Adapter] = [build_adapter(p, services)
                                        for p in cfg.protocols]
        self.by_name = {a.name: a for a in self.adapters}
        self.discovery = Discovery(self.adapters)
        self.native = ChainlinkFeed(cfg.keeper.native_usd_feed)
        self.recorder = Recorder(cfg.keeper.record_file)
        self.sender = Sender(self.chain, signer, cfg.chain.chain_id)
        k = cfg.keeper
        self.limits = Limits(min_profit=int(k.min_profit_usd * USD), max_gas_price=int(k.max_gas_price_gwei * GWEI),
                             gas_margin_pct=int(k.gas_safety_margin * 100), dry_run=self.dry_run)
        self.executor = Executor(self.chain, self.sender, self.recorder, self.limits)
        self.last_block = -1

    async def close(self) -> None:
        if self.pull_oracle is not None:
            await self.pull_oracle.close()
        await self.rpc.close()

    async def start(self) -> None:
        """Sanity checks before anything can be sent; each failure is a StartupError."""
        c = self.cfg
        try:
            chain_id = await self.chain.chain_id()
        except Exception as e:
            raise StartupError(f"cannot reach the node at {c.chain.rpc_url}: {e}") from None
        if chain_id != c.chain.chain_id:
            raise StartupError(f"node at {c.chain.rpc_url} is on chain {chain_id}, config says {c.chain.chain_id}")
        if c.signer.address and c.signer.address != self.signer.address:
            raise StartupError(f"signer key is for {self.signer.address}, config signer.address is {c.signer.address}")
        for what, addr in [("chain.multicall_address", c.chain.multicall_address),
                           ("keeper.native_usd_feed", c.keeper.native_usd_feed)]:
            if not await self.chain.get_code(addr):
                raise StartupError(f"{what}: no contract code at {addr}")
        for a in self.adapters:
            await a.start(self.chain)
            for what, addr in a.contracts().items():
                if not await self.chain.get_code(addr):
                    raise StartupError(f"{a.name}: no contract code at {what} {addr}")
        log.info("keeper.started", chain_id=chain_id, signer=self.signer.address,
                 mode="dry-run" if self.dry_run else "live", protocols=[a.name for a in self.adapters])

    async def _state(self, block: int, all_details: bool = False):
        await self.discovery.advance(block)
        await mirror(self.adapters, block, all_details=all_details)
        self.recorder.pending_rewards = {a.name: r for a in self.adapters if (r := a.pending_rewards())}
        fees = await current_fees(self.chain, max_priority_fee=int(self.cfg.keeper.max_priority_fee_gwei * GWEI))
        native = (await self.native.read(self.chain, block)).price_8
        tokens = set().union(*(a.tokens() for a in self.adapters))
        budget = await self.executor.budget(tokens)
        return fees, native, budget

    async def step(self, block: int) -> list[Outcome]:
        """One block: discover, mirror, price, rank, then simulate/send in rank order."""
        fees, native, budget = await self._state(block)
        opps = [o for a in self.adapters for o in a.opportunities(budget)]
        for o in opps:
            # "batched_with": the account is absorbed by another account's plan (Comet's absorb batches).
            if o.liquidatable and not o.planned and "batched_with" not in o.details:
                self.recorder.add(Outcome("skipped", o.protocol, o.account, o.label, o.reason))
        ranked = rank([o for o in opps if o.liquidatable], fees.expected_price, native)
        self.last_block = block
        if not ranked:
            return []
        log.info("rank", block=block, candidates=len(ranked),
                 best=[(r.opp.protocol, r.opp.account[:10], usd(r.net_usd)) for r in ranked[:3]])
        return await self.executor.run(ranked, self.by_name, budget, fees, native)

    async def scan(self) -> list[ScanRow]:
        block = await self.chain.block_number()
        fees, native, budget = await self._state(block, all_details=True)
        rows = []
        for a in self.adapters:
            for o in a.opportunities(budget):
                profit = None
                if o.expected or o.deferred:  # deferred: a reward the protocol credits later
                    profit = usd(o.gross_usd - gas_cost_usd(o.gas_estimate or 400_000, fees.expected_price, native))
                rows.append(ScanRow(o.protocol, o.account, o.health, usd(o.debt_usd), o.label, profit,
                                    o.liquidatable, o.reason or "liquidatable"))
        rows.sort(key=lambda r: (not r.liquidatable, -(r.expected_profit_usd or 0)))
        return rows

    async def run(self, stop: asyncio.Event, *, max_blocks: int | None = None) -> None:
        """Act on every new block until ``stop`` is set."""
        done = 0
        while not stop.is_set():
            try:
                head = await self.chain.block_number()
                if head > self.last_block:
                    await self.step(head)
                    done += 1
                    if max_blocks is not None and done >= max_blocks:
                        return
            except (StartupError, asyncio.CancelledError):
                raise
            except Exception as e:  # one bad block must not kill the daemon
                log.error("step.failed", error=str(e), error_type=type(e).__name__)
            try:
                await asyncio.wait_for(stop.wait(), self.cfg.chain.poll_interval_seconds)
            except asyncio.TimeoutError:
                pass
