"""The keeper: start-up checks, then per block discover -> mirror -> price -> rank -> simulate ->
hand to the transaction manager -> record, until told to stop. The block loop never waits for a
receipt: the manager (keeper.send.manager, its own task) follows what was sent and the final
records come from its journal (keeper.engine.settle)."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import structlog
from eth_utils import to_checksum_address

from keeper.chain.client import Chain
from keeper.chain.fees import GWEI, Fees, current_fees
from keeper.chain.multicall import Call
from keeper.chain.rpc import Rpc
from keeper.chain.sender import TxRequest
from keeper.chain.signer import Signer
from keeper.config import Config
from keeper.engine.discover import Discovery
from keeper.engine.execute import ERC20, UINT_MAX, Executor, Limits
from keeper.engine.mirror import mirror
from keeper.engine.rank import gas_cost_usd, rank
from keeper.engine.record import Outcome, Recorder, usd
from keeper.engine.settle import APPROVALS_ONLY, BACKOFF_STATUSES, settled_outcome
from keeper.engine.simulate import Simulator
from keeper.errors import StartupError
from keeper.oracles.chainlink import ChainlinkFeed
from keeper.protocols import build_adapter
from keeper.protocols.base import (
    USD,
    Adapter,
    Assessment,
    Budget,
    Planned,
    Services,
    Skip,
)
from keeper.send.manager import Settled, Submission, TxManager
from keeper.send.policy import FeePolicy
from keeper.store import OutcomeStatus, Store, TxKind, open_store

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


def scan_rows(assessments: list[Assessment], gas_price_wei: int, native_price_8: int) -> list[ScanRow]:
    """Every account view (and plans that liquidate no account: claims, buys), liquidatable first,
    then by the profit a plan (or the view's estimate) would make after gas."""
    def profit(gross: int | None, gas: int) -> float | None:
        return None if gross is None else usd(gross - gas_cost_usd(gas or SCAN_GAS, gas_price_wei, native_price_8))

    rows = []
    for a in assessments:
        for v in a.views:
            st = v.status
            if isinstance(st, Planned):
                p = st.plan
                gross = p.gross_usd if p.expected or p.deferred else None
                rows.append(ScanRow(v.protocol, v.account, v.health, usd(v.debt_usd), v.label,
                                    profit(gross, p.gas_estimate), v.liquidatable, st.note or "liquidatable"))
            else:
                code = st.code.value if isinstance(st, Skip) else None
                rows.append(ScanRow(v.protocol, v.account, v.health, usd(v.debt_usd), v.label,
                                    profit(v.value_usd, 0), v.liquidatable, st.message, code))
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
        self.rpc = Rpc(cfg.chain.rpc_url, timeout=cfg.chain.request_timeout_seconds)
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
        k, sc = cfg.keeper, cfg.send
        self.policy = FeePolicy.from_config(
            max_gas_price_gwei=k.max_gas_price_gwei, max_priority_fee_gwei=k.max_priority_fee_gwei,
            tip_floor_gwei=sc.tip_floor_gwei, tip_percentile=sc.tip_percentile, tip_profit_share=sc.tip_profit_share,
            fee_budget_share=sc.fee_budget_share, fee_bump_percent=sc.fee_bump_percent,
            replace_after_blocks=sc.replace_after_blocks)
        self.limits = Limits(min_profit=int(k.min_profit_usd * USD), max_gas_price=int(k.max_gas_price_gwei * GWEI),
                             gas_margin_pct=int(k.gas_safety_margin * 100), dry_run=self.dry_run,
                             backoff_blocks=k.failure_backoff_blocks)
        self.simulator = Simulator(self.chain)
        self.executor = Executor(self.chain, signer.address, self.recorder, self.limits, simulator=self.simulator)
        self.store: Store | None = None
        self.manager: TxManager | None = None  # live mode, once started
        self.last_block = -1

    async def close(self) -> None:
        """Stop sending and release everything; what is in flight stays in the journal."""
        if self.manager is not None:
            await self.manager.close()
        if self.store is not None:
            await self.store.close()
            self.store = None
        if self.pull_oracle is not None:
            await self.pull_oracle.close()
        await self.rpc.close()

    def stop_sending(self) -> None:
        """Nothing new is sent from now on (a shutdown has begun)."""
        if self.manager is not None:
            self.manager.stopping = True

    async def settle(self, timeout: float = 60.0) -> None:
        """Wait until the manager has nothing in flight (tests and the demo; the daemon never does)."""
        if self.manager is not None:
            await self.manager.idle(timeout)

    async def start(self) -> None:
        """Sanity checks before anything can be sent; each failure is a StartupError. Live: open the
        journal and reconcile it with the chain before the first block is planned."""
        c = self.cfg
        node = self.rpc.url
        try:
            chain_id = await self.chain.chain_id()
        except Exception as e:
            raise StartupError(f"cannot reach the node at {node}: {e}") from None
        if chain_id != c.chain.chain_id:
            raise StartupError(f"node at {node} is on chain {chain_id}, config says {c.chain.chain_id}")
        if c.signer.address and c.signer.address != self.signer.address:
            raise StartupError(f"signer key is for {self.signer.address}, config signer.address is {c.signer.address}")
        for what, addr in [("chain.multicall_address", c.chain.multicall_address),
                           ("keeper.native_usd_feed", c.keeper.native_usd_feed)]:
            if not await self.chain.get_code(addr):
                raise StartupError(f"{what}: no contract code at {addr}")
        try:
            native = await self.native.read(self.chain)
        except Exception as e:
            raise StartupError(f"keeper.native_usd_feed {c.keeper.native_usd_feed} does not answer a price: "
                               f"{str(e)[:200]}") from None
        try:
            self.recorder.check_writable()
        except OSError as e:
            raise StartupError(f"keeper.record_file {c.keeper.record_file}: cannot append to it: "
                               f"{e.strerror or e}") from None
        for a in self.adapters:
            await a.start(self.chain)
            for what, addr in a.contracts().items():
                if not await self.chain.get_code(addr):
                    raise StartupError(f"{a.name}: no contract code at {what} {addr}")
        if not self.dry_run:
            balance = await self.chain.get_balance(self.signer.address)
            need = int(c.keeper.min_native_balance * 10**18)
            if balance < need:
                raise StartupError(f"wallet {self.signer.address} holds {balance / 1e18:.6f} of the native token, "
                                   f"below keeper.min_native_balance {c.keeper.min_native_balance}: no gas money")
            await self._start_manager(need)
        log.info("keeper.started", chain_id=chain_id, signer=self.signer.address, node=node,
                 mode="dry-run" if self.dry_run else "live", protocols=[a.name for a in self.adapters],
                 native_usd=native.price_8 / 1e8)

    async def _start_manager(self, min_balance: int) -> None:
        self.store = await open_store(self.cfg.store)
        self.manager = TxManager(self.chain, self.signer, self.store, self.policy, self.cfg.chain.chain_id,
                                 check=self._still_valid, on_settled=self._settled, min_balance=min_balance,
                                 poll_interval=self.cfg.chain.poll_interval_seconds)
        self.executor.manager = self.manager
        try:
            await self.manager.start()
        except Exception as e:
            raise StartupError(f"reconciling the transaction journal ({self.cfg.store.path}) with the chain "
                               f"failed: {type(e).__name__}: {str(e)[:300]}") from None
        await self._record_unreported()
        await self._approve_spenders()

    async def _still_valid(self, before: Sequence[TxRequest], tx: TxRequest, block: int) -> str | None:
        """Why ``tx`` would revert on the state of ``block`` (after our pending ``before``), or None."""
        sim = await self.simulator.run(self.signer.address, [tx], after=before, block=block)
        if sim.ok or sim.unknown or (sim.estimated and before):  # no answer, or the fallback cannot run it
            return None  # after unmined ones: nothing says it is gone
        return sim.reason or "would revert"

    async def _settled(self, s: Settled) -> None:
        """A sent plan is decided: its final record, and a back-off when it failed."""
        try:
            o = settled_outcome(s, self.signer.address)
        except Exception as e:
            log.error("record.settle_failed", attempt=s.outcome.attempt.id, error=str(e), error_type=type(e).__name__)
            return
        if o is None:
            log.info("approvals.settled", attempt=s.outcome.attempt.id, status=s.outcome.status.value)
            return
        self.recorder.add(o)
        if o.status in BACKOFF_STATUSES:
            self.executor.back_off(o.protocol, o.accounts or (o.account,), self.last_block)

    async def _record_unreported(self) -> None:
        """Attempts a previous run decided and did not get to record (killed in between): recorded now,
        from the journal (only with a record file: the in-memory records start empty)."""
        if self.store is None or self.manager is None or self.cfg.keeper.record_file is None:
            return
        done = self.recorder.recorded_attempts()
        for o in await self.store.outcomes():
            a = o.attempt
            final = o.status not in (OutcomeStatus.PENDING, OutcomeStatus.SKIPPED, OutcomeStatus.DRY_RUN,
                                     OutcomeStatus.NOT_SENT)
            if final and a.plan_kind != APPROVALS_ONLY and done.get(a.id) in (None, "pending"):
                await self.manager.settle_attempt(a.id)

    async def _approve_spenders(self) -> None:
        """Approve, once, every (token, spender) the adapters declare (Adapter.spenders) that is not
        approved yet, so that plans need no approval of their own (a node without eth_simulateV1
        then checks a plan with eth_call at once)."""
        assert self.manager is not None
        wanted = sorted({(t, sp, a.name) for a in self.adapters for t, sp in a.spenders()})
        if not wanted:
            return
        fn = ERC20.fn("allowance")
        have = await self.chain.multicall_strict([Call(t, fn.encode(self.signer.address, sp), fn.decode)
                                                 for t, sp, _ in wanted])
        flying = self.manager.pending_approvals()
        todo = [(t, sp, name) for (t, sp, name), x in zip(wanted, have)
                if x < UINT_MAX // 2 and (to_checksum_address(t), sp.lower()) not in flying]
        if not todo:
            return
        block = await self.chain.block_number()
        fees = await self._fees()
        for t, sp, name in todo:
            tx = TxRequest(t, ERC20.fn("approve").encode(sp, UINT_MAX), what=f"approve {t[:10]} for {sp[:10]}")
            sim = await self.simulator.run(self.signer.address, [tx])
            if not sim.ok:
                log.warning("approvals.startup_failed", token=t, spender=sp, reason=sim.reason)
                continue
            sub = Submission(name, (self.signer.address,), APPROVALS_ONLY, block,
                             ((TxKind.APPROVAL, replace(tx, gas=sim.gas_used[0] * self.limits.gas_margin_pct // 100
                                                       + 30_000)),), gross_wei=0, gas=sim.gas_used[0])
            sent = await self.manager.submit(sub, fees)
            log.info("approvals.startup", token=t, spender=sp, protocol=name, sent=bool(sent.hashes),
                     error=sent.error)

    async def _fees(self) -> Fees:
        f = await current_fees(self.chain, max_priority_fee=self.policy.max_tip,
                               percentile=self.policy.tip_percentile)
        return self.policy.market(f.base_fee, f.priority_fee)

    async def _state(self, block: int, all_details: bool = False) -> tuple[Fees, int, Budget]:
        await self.discovery.advance(block)
        await mirror(self.adapters, block, all_details=all_details)
        self.recorder.pending_rewards = {a.name: r for a in self.adapters if (r := a.pending_rewards())}
        fees = await self._fees()
        native = (await self.native.read(self.chain, block)).price_8
        tokens: set[str] = set().union(*(a.tokens() for a in self.adapters))
        budget = await self.executor.budget(tokens)
        return fees, native, budget

    async def step(self, block: int) -> list[Outcome]:
        """One block: discover, mirror, price, rank, then simulate and hand to the manager in rank
        order. Returns the outcomes decided in this block (a sent plan's is pending); the manager
        records the rest as the chain decides."""
        if self.manager is not None:
            await self.manager.sync(block)  # a rollback or a lost mempool is put right before planning
        fees, native, budget = await self._state(block)
        assessments = [a.assess(budget) for a in self.adapters]
        self.last_block = block
        return await self.act(assessments, budget, fees, native, block)

    async def act(self, assessments: list[Assessment], budget: Budget, fees: Fees, native: int,
                  block: int) -> list[Outcome]:
        """Record the liquidatable accounts nothing is planned for (but those with a transaction in
        flight: their record comes from the chain), then rank every plan and execute."""
        flying = self.manager.in_flight(block) if self.manager is not None else set()
        for a in assessments:
            for v in a.views:
                # Covered: in another account's plan
                if v.liquidatable and isinstance(v.status, Skip) and (v.protocol, v.account) not in flying:
                    self.recorder.add(Outcome.skipped_account(v, v.status))
        ranked = rank([p for a in assessments for p in a.plans], fees.expected_price, native)
        if not ranked:
            return []
        log.info("rank", block=block, candidates=len(ranked),
                 best=[(r.plan.protocol, r.plan.account[:10], usd(r.net_usd)) for r in ranked[:3]])
        return await self.executor.run(ranked, self.by_name, budget, fees, native, block)

    async def scan(self) -> list[ScanRow]:
        block = await self.chain.block_number()
        fees, native, budget = await self._state(block, all_details=True)
        return scan_rows([a.assess(budget) for a in self.adapters], fees.expected_price, native)

    async def run(self, stop: asyncio.Event, *, max_blocks: int | None = None) -> None:
        """Act on every new block until ``stop`` is set (a head below the last one is a rollback:
        acted on too)."""
        done = 0
        while not stop.is_set():
            try:
                head = await self.chain.block_number()
                if head != self.last_block:
                    if head < self.last_block:
                        log.warning("chain.head_went_back", head=head, last=self.last_block)
                    await self.step(head)
                    done += 1
                    if max_blocks is not None and done >= max_blocks:
                        return
            except (StartupError, asyncio.CancelledError):
                raise
            except Exception as e:
                log.error("step.failed", error=str(e), error_type=type(e).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.cfg.chain.poll_interval_seconds)
