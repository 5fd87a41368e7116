"""The keeper: start-up checks, then per block discover -> mirror -> price -> rank -> simulate ->
send -> record, until told to stop."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog

from keeper.chain.client import Chain
from keeper.chain.fees import GWEI, Fees, current_fees
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
from keeper.protocols.base import (
    USD,
    AccountView,
    Adapter,
    Assessment,
    Budget,
    Planned,
    Services,
    Skip,
)

log = structlog.get_logger()


def load_signer(cfg: Config) -> Signer:
    s = cfg.signer
    if s.private_key_env:
        return Signer.from_env(s.private_key_env)
    assert s.keystore is not None and s.password_env  # the config model requires one or the other
    return Signer.from_keystore(s.keystore, s.password_env)


SCAN_GAS = 400_000  # gas assumed for scan's profit column when a view has no plan to estimate it


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
    why_code: str | None = None  # the skip's code when nothing is planned
    # Protocols that can pay with flash liquidity: the configured mode, the swap route and its quote,
    # and the profit after gas in each mode (None: that mode has no plan).
    execution: str | None = None
    route: str | None = None
    quoted: str | None = None
    inventory_profit_usd: float | None = None
    flash_profit_usd: float | None = None


def scan_rows(assessments: list[Assessment], gas_price_wei: int, native_price_8: int) -> list[ScanRow]:
    """Every account view (and plans that liquidate no account: claims, buys), liquidatable first,
    then by the profit a plan (or the view's estimate) would make after gas."""
    def profit(gross: int | None, gas: int) -> float | None:
        return None if gross is None else usd(gross - gas_cost_usd(gas or SCAN_GAS, gas_price_wei, native_price_8))

    def modes(v: AccountView) -> dict[str, Any]:
        m = v.modes
        if m is None:
            return {}
        return {"execution": m.execution.value, "route": m.route, "quoted": m.quoted,
                "inventory_profit_usd": profit(m.inventory_usd, m.inventory_gas),
                "flash_profit_usd": profit(m.flash_usd, m.flash_gas)}

    rows = []
    for a in assessments:
        for v in a.views:
            st = v.status
            if isinstance(st, Planned):
                p = st.plan
                gross = p.gross_usd if p.expected or p.deferred else None
                rows.append(ScanRow(v.protocol, v.account, v.health, usd(v.debt_usd), v.label,
                                    profit(gross, p.gas_estimate), v.liquidatable, st.note or "liquidatable",
                                    **modes(v)))
            else:
                code = st.code.value if isinstance(st, Skip) else None
                rows.append(ScanRow(v.protocol, v.account, v.health, usd(v.debt_usd), v.label,
                                    profit(v.value_usd, 0), v.liquidatable, st.message, code, **modes(v)))
        for p in a.plans:
            if not p.accounts:
                gross = p.gross_usd if p.expected or p.deferred else None
                rows.append(ScanRow(p.protocol, p.account, None, usd(p.debt_usd), p.label,
                                    profit(gross, p.gas_estimate), True, "liquidatable"))
    rows.sort(key=lambda r: (not r.liquidatable, -(r.expected_profit_usd or 0)))
    return rows


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
        self.swaps = None
        if cfg.swap is not None:
            from keeper.swap.routing import Swaps
            self.swaps = Swaps(cfg.swap, cfg.flash, self.chain)
        services = Services(liquidator=signer.address, pull_oracle=self.pull_oracle, swaps=self.swaps)
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
        except Exception as e:  # noqa: BLE001
            raise StartupError(f"cannot reach the node at {c.chain.rpc_url}: {e}") from None
        if chain_id != c.chain.chain_id:
            raise StartupError(f"node at {c.chain.rpc_url} is on chain {chain_id}, config says {c.chain.chain_id}")
        if c.signer.address and c.signer.address != self.signer.address:
            raise StartupError(f"signer key is for {self.signer.address}, config signer.address is {c.signer.address}")
        for what, addr in [("chain.multicall_address", c.chain.multicall_address),
                           ("keeper.native_usd_feed", c.keeper.native_usd_feed)]:
            if not await self.chain.get_code(addr):
                raise StartupError(f"{what}: no contract code at {addr}")
        if self.swaps is not None:
            await self.swaps.start()
        for a in self.adapters:
            await a.start(self.chain)
            for what, addr in a.contracts().items():
                if not await self.chain.get_code(addr):
                    raise StartupError(f"{a.name}: no contract code at {what} {addr}")
        log.info("keeper.started", chain_id=chain_id, signer=self.signer.address,
                 mode="dry-run" if self.dry_run else "live", protocols=[a.name for a in self.adapters])

    async def _state(self, block: int, all_details: bool = False) -> tuple[Fees, int, Budget]:
        await self.discovery.advance(block)
        await mirror(self.adapters, block, all_details=all_details)
        self.recorder.pending_rewards = {a.name: r for a in self.adapters if (r := a.pending_rewards())}
        fees = await current_fees(self.chain, max_priority_fee=int(self.cfg.keeper.max_priority_fee_gwei * GWEI))
        native = (await self.native.read(self.chain, block)).price_8
        tokens: set[str] = set().union(*(a.tokens() for a in self.adapters))
        budget = await self.executor.budget(tokens)
        return fees, native, budget

    async def step(self, block: int) -> list[Outcome]:
        """One block: discover, mirror, price, rank, then simulate/send in rank order."""
        fees, native, budget = await self._state(block)
        assessments = [a.assess(budget) for a in self.adapters]
        self.last_block = block
        return await self.act(assessments, budget, fees, native, block)

    async def act(self, assessments: list[Assessment], budget: Budget, fees: Fees, native: int,
                  block: int) -> list[Outcome]:
        """Record the liquidatable accounts nothing is planned for, then rank every plan and execute."""
        for a in assessments:
            for v in a.views:
                if v.liquidatable and isinstance(v.status, Skip):  # Covered: in another account's plan
                    self.recorder.add(Outcome.skipped_account(v, v.status))
        ranked = rank([p for a in assessments for p in a.plans], fees.expected_price, native)
        if not ranked:
            return []
        log.info("rank", block=block, candidates=len(ranked),
                 best=[(r.plan.protocol, r.plan.account[:10], usd(r.net_usd)) for r in ranked[:3]])
        return await self.executor.run(ranked, self.by_name, budget, fees, native)

    async def scan(self) -> list[ScanRow]:
        block = await self.chain.block_number()
        fees, native, budget = await self._state(block, all_details=True)
        return scan_rows([a.assess(budget) for a in self.adapters], fees.expected_price, native)

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
            except Exception as e:  # noqa: BLE001 - one bad block must not kill the daemon
                log.error("step.failed", error=str(e), error_type=type(e).__name__)
            try:
                await asyncio.wait_for(stop.wait(), self.cfg.chain.poll_interval_seconds)
            except TimeoutError:
                pass
