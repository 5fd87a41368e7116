"""`keeper shadow`: follow a live chain read-only and judge the keeper against the liquidations that
happen there.

Each block the keeper's adapters mirror the chain and assess every account as the daemon would
(plans ranked by profit after gas at the block's base fee plus the configured tip, against the
configured wallet's balances, or an unlimited one); nothing is signed or sent (the plans name a
throwaway address). Each liquidation the protocols' own events show in the block is then matched
with what the keeper had seen before it: whether it had found the account liquidatable, the block
its transaction would have landed in at the earliest (following live: the head once its decision
was ready, plus one; replaying history: the next block), the winner and the value it captured. The
keeper would have caught it when its transaction would have landed in an earlier block than the
winner's; in the same block the order is the block builder's, counted as missed.
"""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog
from eth_account import Account

from keeper.chain.client import hexint
from keeper.chain.fees import GWEI, Fees
from keeper.chain.signer import Signer
from keeper.config import Config
from keeper.engine.daemon import Keeper
from keeper.engine.mirror import mirror
from keeper.engine.rank import rank
from keeper.engine.record import usd
from keeper.errors import ConfigError, StartupError
from keeper.live.anvil import redact
from keeper.protocols.base import USD, Budget, ObservedLiquidation, PlanKind

log = structlog.get_logger()
UNLIMITED = 2**200


@dataclass
class Sighting:
    """What the keeper saw of one account since its last liquidation."""
    first_liquidatable: int | None = None  # first block whose state showed it liquidatable
    send_block: int | None = None  # the block its transaction would have landed in, at the earliest
    net_usd: int | None = None  # profit after estimated gas it would have sent for
    skip: str | None = None  # why nothing was planned when it was liquidatable (the last reason)


@dataclass(frozen=True)
class ShadowRow:
    protocol: str
    kind: str
    account: str
    label: str
    block: int
    tx_hash: str
    winner: str
    value_usd: float | None
    seen_liquidatable: bool
    seen_block: int | None
    send_block: int | None  # where the keeper's transaction would have landed, at the earliest
    caught: bool  # it would have landed before the winner's
    lag_blocks: int | None  # send_block - block: <= -1 the keeper first, 0 the same block, > 0 late
    keeper_predicted_usd: float | None
    keeper_skip: str | None  # why the keeper planned nothing, when it saw the account liquidatable
    by_keeper: bool  # the winner is the config's own signer.address


@dataclass
class ShadowReport:
    chain_id: int
    rpc: str  # redacted
    mode: str  # "follow" or "replay"
    from_block: int
    to_block: int
    liquidator: str  # the address the plans were made for (never signs)
    budget: str  # "unlimited" or the wallet whose balances sized the plans
    rows: list[ShadowRow] = field(default_factory=list)
    open_sightings: int = 0  # accounts the keeper would have sent for that nobody liquidated meanwhile
    step_errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        caught = [r for r in self.rows if r.caught]
        missed = [r for r in self.rows if not r.caught]
        lags = [r.lag_blocks for r in self.rows if r.lag_blocks is not None]
        return {"liquidations": len(self.rows), "caught": len(caught),
                "share_caught": round(len(caught) / len(self.rows), 4) if self.rows else None,
                "value_caught_usd": round(sum(r.value_usd or 0 for r in caught), 8),
                "value_missed_usd": round(sum(r.value_usd or 0 for r in missed), 8),
                "unknown_value": sum(r.value_usd is None for r in self.rows),
                "never_seen": sum(not r.seen_liquidatable for r in self.rows),
                "median_lag_blocks": sorted(lags)[len(lags) // 2] if lags else None,
                "open_sightings": self.open_sightings}

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}

    def text(self) -> str:
        s = self.summary()
        lines = [(f"shadow ({self.mode}) of chain {self.chain_id} ({self.rpc}), "
                  f"blocks {self.from_block}-{self.to_block}; "
                 f"plans for {self.liquidator}, budget {self.budget}")]
        head = ["protocol", "account", "label", "block", "winner", "value_usd", "seen", "send_block", "caught", "lag"]
        body = [[r.protocol, r.account, r.label, str(r.block), r.winner + (" (this keeper)" if r.by_keeper else ""),
                 "-" if r.value_usd is None else f"{r.value_usd:,.2f}",
                 "-" if r.seen_block is None else str(r.seen_block),
                 "-" if r.send_block is None else str(r.send_block), "yes" if r.caught else "no",
                 "-" if r.lag_blocks is None else f"{r.lag_blocks:+d}"] for r in self.rows]
        if body:
            widths = [max(len(x) for x in col) for col in zip(head, *body)]
            lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() for row in [head, *body]]
        else:
            lines.append("no liquidation happened")
        share = "-" if s["share_caught"] is None else f"{100 * s['share_caught']:.1f}%"
        lines.append(f"summary: {s['liquidations']} liquidations, "
                     f"the keeper would have caught {s['caught']} ({share}); "
                     f"value caught {s['value_caught_usd']:,.2f} USD, missed {s['value_missed_usd']:,.2f} USD"
                     + (f" ({s['unknown_value']} of unknown value)" if s["unknown_value"] else "")
                     + f"; never seen liquidatable: {s['never_seen']}; median lag {s['median_lag_blocks']} blocks")
        lines += [f"step failed: {e}" for e in self.step_errors]
        return "\n".join(lines)


def shadow_config(cfg: Config) -> Config:
    """The config for a keeper that never signs: no signer address check, no record file, an
    in-memory store."""
    return cfg.model_copy(update={
        "signer": cfg.signer.model_copy(update={"address": None}),
        "keeper": cfg.keeper.model_copy(update={"record_file": None}),
        "store": cfg.store.model_copy(update={"path": ":memory:"})})


class Shadow:
    def __init__(self, cfg: Config, *, wallet: str | None = None):
        self.cfg = cfg
        self.wallet = wallet  # whose balances size the plans; None: unlimited
        # A throwaway key: the plans' calldata names its address; nothing is ever signed with it.
        self.keeper = Keeper(shadow_config(cfg), Signer(Account.create()), dry_run=True)
        self.sightings: dict[tuple[str, str], Sighting] = {}
        self.rows: list[ShadowRow] = []
        self.errors: list[str] = []

    async def start(self) -> None:
        await self.keeper.start()

    async def close(self) -> None:
        await self.keeper.close()

    async def step(self, block: int, *, live: bool) -> None:
        """Judge block's liquidations against the earlier blocks' sightings, then note what the keeper
        would do from block's state."""
        k = self.keeper
        await k.discovery.advance(block)
        await mirror(k.adapters, block)
        for a in k.adapters:
            for ev in await a.liquidation_events(block, block):
                self.rows.append(self._judge(ev))
        b = await k.chain.get_block(block)
        base = hexint(b.get("baseFeePerGas") or 0)
        tip = int(self.cfg.keeper.max_priority_fee_gwei * GWEI)
        fees = Fees(base_fee=base, priority_fee=tip, max_fee=2 * base + tip)
        native = (await k.native.read(k.chain, block)).price_8
        budget = await self._budget(block)
        assessments = [a.assess(budget) for a in k.adapters]
        send_block = (max(block, await k.chain.block_number()) if live else block) + 1
        for asm in assessments:
            for v in asm.views:
                if v.liquidatable:
                    s = self.sightings.setdefault((v.protocol, v.account), Sighting())
                    if s.first_liquidatable is None:
                        s.first_liquidatable = block
                    if v.skip is not None:
                        s.skip = f"{v.skip.code.value}: {v.skip.message}"
        min_profit = int(self.cfg.keeper.min_profit_usd * USD)
        for r in rank([p for asm in assessments for p in asm.plans], fees.expected_price, native):
            if r.plan.kind is PlanKind.CLAIM:
                continue
            worth = r.net_usd >= min_profit or r.plan.force
            for acct in r.plan.accounts or (r.plan.account,):
                s = self.sightings.setdefault((r.plan.protocol, acct), Sighting())
                if s.first_liquidatable is None:
                    s.first_liquidatable = block
                if not worth:
                    s.skip = f"below_min_profit: {usd(r.net_usd):.2f} USD after estimated gas"
                elif s.send_block is None:
                    s.send_block, s.net_usd = send_block, r.net_usd

    async def _budget(self, block: int) -> Budget:
        tokens = sorted({t for a in self.keeper.adapters for t in a.tokens()})
        if self.wallet is None:
            return dict.fromkeys(tokens, UNLIMITED)
        bals = await self.keeper.chain.erc20_balances([(t, self.wallet) for t in tokens], block)
        return dict(zip(tokens, bals))

    def _judge(self, ev: ObservedLiquidation) -> ShadowRow:
        s = self.sightings.pop((ev.protocol, ev.account), None) or Sighting()
        caught = s.send_block is not None and s.send_block < ev.block
        me = self.cfg.signer.address
        return ShadowRow(ev.protocol, ev.kind.value, ev.account, ev.label, ev.block, ev.tx_hash, ev.winner,
                         usd(ev.value_usd), s.first_liquidatable is not None, s.first_liquidatable, s.send_block,
                         caught, None if s.send_block is None else s.send_block - ev.block, usd(s.net_usd),
                         s.skip if s.send_block is None else None, me is not None and ev.winner == me)

    async def run(self, *, from_block: int | None, to_block: int | None, blocks: int | None,
                  stop: asyncio.Event) -> ShadowReport:
        """Replay [from_block, to_block] (history), or follow the head for ``blocks`` blocks (or until
        ``stop``)."""
        chain = self.keeper.chain
        head = await chain.block_number()
        replay = to_block is not None
        if replay:
            assert to_block is not None
            start = from_block if from_block is not None else to_block
            if to_block > head:
                raise ConfigError(f"--to-block {to_block}: the chain's head is {head} (replays need past blocks)")
            if not 0 <= start <= to_block:
                raise ConfigError(f"--from-block {start} must be at or before --to-block {to_block}")
            end: int | None = to_block
        else:
            if from_block is not None:
                raise ConfigError("--from-block replays history: give --to-block too")
            start = head
            end = None if blocks is None else head + blocks - 1
        report = ShadowReport(await chain.chain_id(), redact(self.cfg.chain.rpc_url), "replay" if replay else "follow",
                              start, start, self.keeper.signer.address,
                              "unlimited" if self.wallet is None else f"wallet {self.wallet}")
        nxt = start
        while not stop.is_set() and (end is None or nxt <= end):
            top = await chain.block_number() if not replay else end
            assert top is not None
            if nxt > top:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.cfg.chain.poll_interval_seconds)
                continue
            try:
                await self.step(nxt, live=not replay)
            except (StartupError, asyncio.CancelledError):
                raise
            except Exception as e:
                self.errors.append(f"block {nxt}: {type(e).__name__}: {e}")
                log.error("shadow.step_failed", block=nxt, error=str(e))
            report.to_block = nxt
            nxt += 1
        report.rows = list(self.rows)
        report.open_sightings = sum(s.send_block is not None for s in self.sightings.values())
        report.step_errors = list(self.errors)
        return report


async def shadow(cfg: Config, *, from_block: int | None = None, to_block: int | None = None,
                 blocks: int | None = None, wallet: str | None = None,
                 stop: asyncio.Event | None = None) -> ShadowReport:
    sh = Shadow(cfg, wallet=wallet)
    try:
        await sh.start()
        return await sh.run(from_block=from_block, to_block=to_block, blocks=blocks, stop=stop or asyncio.Event())
    finally:
        await sh.close()
