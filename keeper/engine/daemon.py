"""The keeper: start-up checks, then per block discover -> mirror -> price -> rank -> simulate ->
hand to the transaction manager -> record, until told to stop. The block loop never waits for a
receipt: the manager (keeper.send.manager, its own task) follows what was sent and the final
records come from its journal (keeper.engine.settle)."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog
from eth_utils import to_checksum_address

from keeper.chain.client import Chain
from keeper.chain.counting import CountingTransport, endpoint_label
from keeper.chain.failover import FailoverTransport
from keeper.chain.fees import GWEI, Fees, current_fees
from keeper.chain.heads import Head, HeadSource
from keeper.chain.l1fee import UnsignedTx, l1_fee
from keeper.chain.multicall import Call
from keeper.chain.relay import RelaySubmitter
from keeper.chain.rpc import HttpTransport, Rpc
from keeper.chain.sender import TxRequest
from keeper.chain.signer import Signer
from keeper.config import Config
from keeper.engine.discover import Discovery
from keeper.engine.execute import ERC20, UINT_MAX, Executor, Limits
from keeper.engine.mirror import changes, mirror, restore
from keeper.engine.rank import gas_cost_usd, rank
from keeper.engine.record import Outcome, Recorder, usd
from keeper.engine.settle import APPROVALS_ONLY, BACKOFF_STATUSES, settled_outcome
from keeper.engine.simulate import Simulator
from keeper.errors import StartupError
from keeper.observe.alerts import Alerter
from keeper.observe.telemetry import ProtocolState, Telemetry
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
from keeper.send.manager import Settled, Submission, TxManager
from keeper.send.policy import FeePolicy
from keeper.store import OutcomeStatus, Store, StoreError, TxKind, open_store

if TYPE_CHECKING:
    from keeper.observe.server import Monitor

log = structlog.get_logger()


def load_signer(cfg: Config) -> Signer:
    s = cfg.signer
    if s.private_key_env:
        return Signer.from_env(s.private_key_env)
    assert s.keystore is not None and s.password_env  # the config model requires one or the other
    return Signer.from_keystore(s.keystore, s.password_env)


def build_rpc(cfg: Config, telemetry: Telemetry) -> Rpc:
    """The endpoints of ``chain.rpc_url`` and ``chain.rpc_urls`` behind one failover transport,
    each counted per method in the telemetry."""
    c = cfg.chain
    eps = [(endpoint_label(u), CountingTransport(HttpTransport(u, timeout=c.request_timeout_seconds), telemetry,
                                                 endpoint_label(u))) for u in c.urls]
    transport = FailoverTransport(
        [(label, t) for label, t in eps], errors=c.failover_errors, stale_seconds=c.failover_stale_seconds,
        lag_blocks=c.failover_lag_blocks, recheck_seconds=c.failover_recheck_seconds, chain_id=c.chain_id,
        on_switch=telemetry.rpc_switched, on_reject=telemetry.rpc_rejected, ws_urls=[c.ws_url])
    telemetry.rpc_active = transport.endpoint
    return Rpc(transport=transport)


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


def _where(cfg: Config) -> str:
    """The endpoints for messages: host:port only (a URL's path and query may hold an API key)."""
    return ", ".join(endpoint_label(u) for u in cfg.chain.urls)


class Keeper:
    def __init__(self, cfg: Config, signer: Signer, *, dry_run: bool | None = None, store: Store | None = None):
        self.cfg = cfg
        self.signer = signer
        self.dry_run = cfg.keeper.mode == "dry-run" if dry_run is None else dry_run
        m = cfg.monitor
        self.telemetry = Telemetry(m, Alerter(m.webhook_url, timeout=m.webhook_timeout_seconds))
        self.rpc = build_rpc(cfg, self.telemetry)
        self.monitor: Monitor | None = None
        self.chain = Chain(self.rpc, multicall_address=cfg.chain.multicall_address,
                           log_chunk_blocks=cfg.chain.log_chunk_blocks,
                           max_request_bytes=cfg.chain.max_request_bytes, max_batch=cfg.chain.max_batch)
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
        self.telemetry.protocols = {a.name: ProtocolState() for a in self.adapters}
        self.store = store
        self._own_store = False  # none given: start() opens the configured one, close() closes it
        # With a store: a durable, reorg-aware index, written with the mirror's rows once a block.
        self.discovery = Discovery(self.adapters, store, defer_commit=True)
        self.native = ChainlinkFeed(cfg.keeper.native_usd_feed)
        self.recorder = Recorder(cfg.keeper.record_file)
        self.recorder.listeners.append(self.telemetry.outcome)
        self.submitter = (RelaySubmitter(cfg.relay, self.chain, on_submit=self.telemetry.tx_sent)
                          if cfg.relay is not None else None)
        k, sc = cfg.keeper, cfg.send
        self.policy = FeePolicy.from_config(
            max_gas_price_gwei=k.max_gas_price_gwei, max_priority_fee_gwei=k.max_priority_fee_gwei,
            tip_floor_gwei=sc.tip_floor_gwei, tip_percentile=sc.tip_percentile, tip_profit_share=sc.tip_profit_share,
            fee_budget_share=sc.fee_budget_share, fee_bump_percent=sc.fee_bump_percent,
            replace_after_blocks=sc.replace_after_blocks)
        self.limits = Limits(min_profit=int(k.min_profit_usd * USD), max_gas_price=int(k.max_gas_price_gwei * GWEI),
                             gas_margin_pct=int(k.gas_safety_margin * 100), dry_run=self.dry_run,
                             backoff_blocks=k.failure_backoff_blocks, l2=cfg.chain.l2, chain_id=cfg.chain.chain_id)
        self.simulator = Simulator(self.chain)
        self.executor = Executor(self.chain, signer.address, self.recorder, self.limits, simulator=self.simulator)
        self.manager: TxManager | None = None  # live mode, once started
        self.last_block = -1
        ws = self.rpc.transport.ws_url if isinstance(self.rpc.transport, FailoverTransport) else cfg.chain.ws_url
        self.heads = HeadSource(self.chain.block_number, ws, cfg.chain.poll_interval_seconds)
        self.head: Head | None = None  # the head of the current or last step

    async def close(self) -> None:
        """Stop sending and release everything; what is in flight stays in the journal."""
        if self.manager is not None:
            await self.manager.close()
        if self.store is not None and self._own_store:
            await self.store.close()
            self.store, self._own_store = None, False
        if self.monitor is not None:
            await self.monitor.stop()
            self.monitor = None
        if self.pull_oracle is not None:
            await self.pull_oracle.close()
        await self.telemetry.alerter.close()
        if self.submitter is not None:
            await self.submitter.close()
        await self.rpc.close()

    def stop_sending(self) -> None:
        """Nothing new is sent from now on (a shutdown has begun)."""
        if self.manager is not None:
            self.manager.stopping = True

    async def settle(self, timeout: float = 60.0) -> None:
        """Wait until the manager has nothing in flight (tests and the demo; the daemon never does)."""
        if self.manager is not None:
            await self.manager.idle(timeout)

    async def serve_monitor(self) -> Monitor:
        """Start the /healthz and /metrics server (on [monitor] listen); stopped by close()."""
        from keeper.observe.server import Monitor
        if self.monitor is None:
            self.monitor = await Monitor(self.telemetry, self.cfg.monitor.listen).start()
        return self.monitor

    async def start(self) -> None:
        """Sanity checks before anything can be sent; each failure is a StartupError. Live: open the
        journal and reconcile it with the chain before the first block is planned."""
        c = self.cfg
        try:
            chain_id = await self.chain.chain_id()
        except Exception as e:
            raise StartupError(f"cannot reach the node at {_where(c)}: {e}") from None
        if chain_id != c.chain.chain_id:
            raise StartupError(f"node at {_where(c)} is on chain {chain_id}, config says {c.chain.chain_id}")
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
        if c.chain.l2 != "none":  # asked for every plan: a chain of another kind is refused now
            try:
                await l1_fee(self.chain, c.chain.l2, UnsignedTx(chain_id, c.chain.multicall_address, b""))
            except Exception as e:
                raise StartupError(f"chain.l2 = {c.chain.l2!r}: the node does not answer the L1 fee: "
                                   f"{str(e)[:200]}") from None
        try:
            self.recorder.check_writable()
        except OSError as e:
            raise StartupError(f"keeper.record_file {c.keeper.record_file}: cannot append to it: "
                               f"{e.strerror or e}") from None
        if self.swaps is not None:
            await self.swaps.start()
        for a in self.adapters:
            await a.start(self.chain)
            for what, addr in a.contracts().items():
                if not await self.chain.get_code(addr):
                    raise StartupError(f"{a.name}: no contract code at {what} {addr}")
        if self.store is None:  # the durable index and the journal: the configured store
            self.store, self._own_store = await open_store(c.store), True
            self.discovery.store = self.store
        genesis = await self.chain.rpc.request("eth_getBlockByNumber", ["0x0", False])
        try:
            await self.store.bind_chain(chain_id, str((genesis or {}).get("hash", "")))
        except StoreError as e:
            raise StartupError(str(e)) from None
        await self.discovery.load()
        await restore(self.store, self.adapters)
        eth = await self.chain.get_balance(self.signer.address)
        tokens: set[str] = set().union(*(a.tokens() for a in self.adapters))
        budget = await self.executor.budget(tokens)
        self.telemetry.wallet(eth, budget)
        if not self.dry_run:
            need = int(c.keeper.min_native_balance * 10**18)
            if eth < need:
                raise StartupError(f"wallet {self.signer.address} holds {eth / 1e18:.6f} of the native token, "
                                   f"below keeper.min_native_balance {c.keeper.min_native_balance}: no gas money")
            await self._start_manager(need)
        log.info("keeper.started", chain_id=chain_id, signer=self.signer.address,
                 mode="dry-run" if self.dry_run else "live", protocols=[a.name for a in self.adapters],
                 rpc_endpoints=[endpoint_label(u) for u in c.chain.urls], wallet_eth=str(Decimal(eth) / 10**18),
                 wallet_tokens={t: str(b) for t, b in budget.items() if b}, native_usd=native.price_8 / 1e8)

    async def _start_manager(self, min_balance: int) -> None:
        assert self.store is not None
        self.manager = TxManager(self.chain, self.signer, self.store, self.policy, self.cfg.chain.chain_id,
                                 check=self._still_valid, on_settled=self._settled, min_balance=min_balance,
                                 poll_interval=self.cfg.chain.poll_interval_seconds, submitter=self.submitter,
                                 events=self.telemetry)
        self.executor.manager = self.manager
        try:
            await self.manager.start()
        except Exception as e:
            raise StartupError(f"reconciling the transaction journal ({self.cfg.store.path}) with the chain "
                               f"failed: {type(e).__name__}: {str(e)[:300]}") from None
        await self._record_unreported()
        if not await self.simulator.probe(self.signer.address):
            await self._approve_spenders()  # plans are then checked alone, with eth_call: approved beforehand

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
            log.info("approvals.settled", attempt=s.outcome.attempt.id,
                     transactions={t.tx_hash: t.status.value for t in s.outcome.txs})
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
            approval = (TxKind.APPROVAL, replace(tx, gas=self.limits.gas_limit(sim.gas_used[0])))
            sub = Submission(name, (self.signer.address,), APPROVALS_ONLY, block, (approval,), gross_wei=0,
                             gas=sim.gas_used[0])
            sent = await self.manager.submit(sub, fees)
            log.info("approvals.startup", token=t, spender=sp, protocol=name, sent=bool(sent.hashes),
                     error=sent.error)

    async def _fees(self) -> Fees:
        f = await current_fees(self.chain, max_priority_fee=self.policy.max_tip,
                               percentile=self.policy.tip_percentile)
        return self.policy.market(f.base_fee, f.priority_fee)

    async def _index(self, block: int, all_details: bool) -> None:
        """Discover and mirror up to ``block``; with a store, both written in one batch."""
        await self.discovery.advance(block, self.chain)
        await mirror(self.adapters, block, all_details=all_details)
        indexed = self.discovery.indexed
        if self.store is not None and indexed is not None and indexed[0] == block:
            await self.discovery.commit(changes(self.adapters, block, indexed[1]))
        self.recorder.pending_rewards = {a.name: r for a in self.adapters if (r := a.pending_rewards())}

    async def _state(self, block: int, all_details: bool = False) -> tuple[Fees, int, Budget]:
        """Everything a block's plans are made on. The reads that do not depend on each other go
        out together, in one JSON-RPC batch (Rpc.coalescing): the manager's nonce check (a rollback
        or a lost mempool is put right before planning), the block's header (discovery), the fee
        history, the native price and the wallet's balances; then the logs and the mirror."""
        tokens: set[str] = set().union(*(a.tokens() for a in self.adapters))

        async def sync() -> None:
            if self.manager is not None:
                await self.manager.sync(block)

        with self.rpc.coalescing(self.chain.limits):
            _, _, fees, feed, budget, eth = await asyncio.gather(
                sync(), self._index(block, all_details), self._fees(), self.native.read(self.chain, block),
                self.executor.budget(tokens), self.chain.get_balance(self.signer.address))
        more = set().union(*(a.tokens() for a in self.adapters)) - tokens  # e.g. a market found in this block
        if more:
            budget.update(await self.executor.budget(more))
        native = feed.price_8
        self.telemetry.native_price(native)
        self.telemetry.wallet(eth, budget)
        if self.manager is not None:
            self.manager.balance_seen(block, eth)
        return fees, native, budget

    async def step(self, block: int) -> list[Outcome]:
        """One block: discover, mirror, price, rank, then simulate and hand to the manager in rank
        order. Returns the outcomes decided in this block (a sent plan's is pending); the manager
        records the rest as the chain decides."""
        self.telemetry.step_started(block)
        fees, native, budget = await self._state(block)
        assessments = [a.assess_liquidatable(budget) for a in self.adapters]
        for ad, asm in zip(self.adapters, assessments, strict=True):
            self.telemetry.assessed(ad.name, asm.tracked, len(asm.plans))
        self.last_block = block
        outcomes = await self.act(assessments, budget, fees, native, block)
        for ad in self.adapters:  # off the path from head to sent plans (e.g. deferred re-checks)
            await ad.after_block(block)
        return outcomes

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
        plans = [p for a in assessments for p in a.plans]
        ranked = rank(plans, fees.expected_price, native, await self.executor.l1_estimates(plans, fees))
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
        """Act on every new head (WebSocket newHeads, or polling) until ``stop`` is set. When steps are
        slower than blocks, the step runs on the newest block of the range not yet handled."""
        if self.manager is not None:
            self.manager.following = True  # told each head below: it does not poll for them itself
        try:
            await self._run(stop, max_blocks)
        finally:
            if self.manager is not None:
                self.manager.following = False

    async def _run(self, stop: asyncio.Event, max_blocks: int | None) -> None:
        done = 0
        loop = asyncio.get_running_loop()
        retry: Head | None = None  # a head whose step failed: tried again unless a newer one came
        async with self.heads:
            while not stop.is_set():
                head, retry = retry or await self.heads.next(stop), None
                if head is None:
                    return
                self.telemetry.head_seen(head.number)
                if head.number <= self.last_block:
                    continue
                self.head = head
                try:
                    t0 = loop.time()
                    outcomes = await self.step(head.number)
                    self.telemetry.block_processed(head.number)
                    log.debug("step.done", block=head.number, seconds=round(loop.time() - t0, 3),
                              outcomes=len(outcomes))
                    done += 1
                    if self.manager is not None:  # after the step: its receipts poll does not hold up sending
                        self.manager.head_seen(head.number)
                    if max_blocks is not None and done >= max_blocks:
                        return
                except (StartupError, asyncio.CancelledError):
                    raise
                except Exception as e:
                    self.telemetry.step_failed(e)
                    log.error("step.failed", error=str(e), error_type=type(e).__name__)
                    if self.manager is not None:
                        self.manager.head_seen(head.number)
                    # a failed step waits a poll interval before the next try (the node may be down)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.cfg.chain.poll_interval_seconds)
                    retry = self.heads.next_nowait() or head
