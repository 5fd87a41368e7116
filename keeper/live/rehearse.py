"""`keeper rehearse`: the keeper run against an Anvil fork of the real chain, after price shocks.

The fork runs under another chain id (a transaction signed there is not valid on the real chain),
mines at the real chain's block time with the fork block's base fee, and is the only node the
keeper (and so its signer) talks to: the real chain's URL is read for its chain id and the fork
block's figures, then given only to Anvil. The keeper's wallet is funded on the fork (native
balance, and the tokens its plans spend), the shocks replace the shocked feeds' aggregators, and the
keeper runs for K blocks sending real transactions into the fork. The report has a row per plan
sent: predicted and realised profit, gas, reverted or not, and blocks of lag (from the first block
the keeper saw the account liquidatable to the block its liquidation landed).
"""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import structlog
from eth_account import Account

from keeper.chain.client import Chain, hexint
from keeper.chain.rpc import Rpc
from keeper.chain.signer import Signer
from keeper.config import Config
from keeper.engine.daemon import Keeper, load_signer
from keeper.engine.mirror import mirror
from keeper.engine.record import Outcome, Status, usd
from keeper.errors import ConfigError, StartupError
from keeper.live.anvil import ForkNode, check_reachable, find_anvil, redact
from keeper.live.fork import (
    AppliedShock,
    Shock,
    apply_shocks,
    resolve,
    set_erc20_balance,
    set_native_balance,
)
from keeper.live.pyth import AppliedPythShock, Written, is_feed_id, resolve_pyth, shock_pyth_price
from keeper.protocols.base import Assessment, Budget, PlanKind, PythFeedRef

log = structlog.get_logger()

DEFAULT_FORK_CHAIN_ID = 1_337_133_701  # unassigned; a different one is picked if the real chain has it
UNLIMITED = 2**200  # the budget the funding needs are assessed with
FUND_MARGIN_PCT = 150  # tokens funded: what the plans would spend, plus half (prices and interest move)
BLOCK_TIME_SAMPLE = 100  # blocks the real chain's block time is averaged over


@dataclass(frozen=True)
class Options:
    fork_url: str
    fork_block: int | None = None
    blocks: int = 10
    shocks: tuple[Shock, ...] = ()
    anvil: str | None = None
    fork_chain_id: int | None = None
    block_time: float | None = None  # None: the real chain's, from its recent blocks
    fund_native_wei: int = 10 * 10**18
    throwaway_key: bool = False  # a fresh key instead of the config's signer


@dataclass(frozen=True)
class Funded:
    token: str  # "native" or the token's address
    amount: int
    before: int


@dataclass(frozen=True)
class PlanRow:
    protocol: str
    account: str
    accounts: tuple[str, ...]
    label: str
    status: str  # confirmed, reverted, failed
    predicted_usd: float | None
    realised_usd: float | None
    gas_used: int | None
    reverted: bool
    block: int | None
    lag_blocks: int | None  # landing block - first block the account was seen liquidatable
    reason: str | None
    tx_hash: str | None


@dataclass(frozen=True)
class NotSent:
    protocol: str
    account: str
    label: str
    code: str | None
    reason: str | None


@dataclass
class Report:
    real_chain_id: int
    fork_chain_id: int
    fork_url: str  # redacted: scheme and host only
    fork_block: int
    block_time: float
    base_fee_wei: int
    first_block: int  # the fork's head when the shocks were applied
    last_block: int
    signer: str
    shocks: list[AppliedShock] = field(default_factory=list)
    pyth_shocks: list[AppliedPythShock] = field(default_factory=list)  # written in Pyth's storage
    not_shocked: list[str] = field(default_factory=list)  # prices the shocks do not reach, and why
    funded: list[Funded] = field(default_factory=list)
    plans: list[PlanRow] = field(default_factory=list)
    not_sent: list[NotSent] = field(default_factory=list)
    step_errors: list[str] = field(default_factory=list)

    @property
    def reverted(self) -> int:
        return sum(r.reverted for r in self.plans)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["shocks"] = [{**asdict(s), "pct": str(s.pct), "before": str(s.before), "after": str(s.after)}
                         for s in self.shocks]
        out["pyth_shocks"] = [{**asdict(p), "before": str(p.before), "after": str(p.after)} for p in self.pyth_shocks]
        out["funded"] = [{"token": f.token, "amount": str(f.amount), "before": str(f.before)} for f in self.funded]
        out["totals"] = {
            "sent": len(self.plans), "reverted": self.reverted,
            "predicted_usd": round(sum(r.predicted_usd or 0 for r in self.plans), 8),
            "realised_usd": round(sum(r.realised_usd or 0 for r in self.plans if r.status == "confirmed"), 8),
            "gas_used": sum(r.gas_used or 0 for r in self.plans)}
        return out

    def text(self) -> str:
        t = self.to_json()["totals"]
        lines = [(f"rehearsal: fork of chain {self.real_chain_id} ({self.fork_url}) at block {self.fork_block}, "
                 f"run as chain {self.fork_chain_id}; block time {self.block_time:g}s, base fee "
                 f"{self.base_fee_wei / 1e9:.4g} gwei; blocks {self.first_block}-{self.last_block}; "
                 f"signer {self.signer}")]
        for s in self.shocks:
            scale = 10**s.decimals
            lines.append(f"shock: {s.token} {s.pct:+}% "
                         f"(feed {s.feed}: {s.before / scale:,.6g} -> {s.after / scale:,.6g})")
        for p in self.pyth_shocks:
            scale = Decimal(10) ** p.expo
            via = "" if p.storage == p.pyth else f", stored in {p.storage}"
            lines.append(f"shock: {p.label} {Decimal(p.pct):+}% (Pyth {p.pyth} feed {p.feed_id}: "
                         f"{Decimal(p.before) * scale:,.6g} -> {Decimal(p.after) * scale:,.6g}, published "
                         f"{p.publish_time}; written in storage ({p.layout} layout{via}))")
        lines += [f"not shocked: {n}" for n in self.not_shocked]
        if self.funded:
            lines.append("funded on the fork: " + ", ".join(f"{f.token} {f.before} -> {f.amount}" for f in self.funded))
        head = ["protocol", "account", "label", "status", "predicted_usd", "realised_usd", "gas", "reverted",
                "lag_blocks"]
        body = [[r.protocol, r.account, r.label, r.status, _money(r.predicted_usd), _money(r.realised_usd),
                 "-" if r.gas_used is None else str(r.gas_used), "yes" if r.reverted else "no",
                 "-" if r.lag_blocks is None else str(r.lag_blocks)] for r in self.plans]
        lines.append(_table(head, body) if body else "no plan was sent")
        lines.append(f"totals: {t['sent']} plans sent, {t['reverted']} reverted; "
                     f"predicted {t['predicted_usd']:,.2f} USD, "
                     f"realised {t['realised_usd']:,.2f} USD, gas {t['gas_used']}")
        for n in self.not_sent:
            lines.append(f"not sent: {n.protocol} {n.account} {n.label}: {n.code} {n.reason}")
        lines += [f"step failed: {e}" for e in self.step_errors]
        return "\n".join(lines)


def _money(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def _table(head: list[str], body: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in [head, *body])


class _WatchedKeeper(Keeper):
    """The keeper, noting the first block each account was seen liquidatable (for the lag)."""

    first_seen: dict[tuple[str, str], int]

    async def act(self, assessments: list[Assessment], budget: Budget, fees: Any, native: int,
                  block: int) -> list[Outcome]:
        for a in assessments:
            for v in a.views:
                if v.liquidatable:
                    self.first_seen.setdefault((v.protocol, v.account), block)
        return await super().act(assessments, budget, fees, native, block)


@dataclass(frozen=True)
class RealChain:
    chain_id: int
    fork_block: int
    timestamp: int
    base_fee: int
    block_time: float


async def read_real_chain(url: str, fork_block: int | None) -> RealChain:
    """The real chain's id, the fork block (its head unless given), its base fee and the mean block
    time of the blocks before it; read-only."""
    await check_reachable(url, "--fork-url")
    rpc = Rpc(url, timeout=15, attempts=2)
    chain = Chain(rpc)
    try:
        try:
            chain_id = await chain.chain_id()
            head = await chain.block_number()
        except Exception as e:
            raise StartupError(f"cannot reach the node at {redact(url)}: {type(e).__name__}") from None
        block = head if fork_block is None else fork_block
        if not 0 <= block <= head:
            raise ConfigError(f"--fork-block {block}: the chain's head is {head}")
        b = await chain.get_block(block)
        start = max(0, block - BLOCK_TIME_SAMPLE)
        a = await chain.get_block(start) if start < block else b
        ts, ts0 = hexint(b["timestamp"]), hexint(a["timestamp"])
        mean = (ts - ts0) / (block - start) if block > start else 1.0
        return RealChain(chain_id, block, ts, hexint(b.get("baseFeePerGas") or 0), max(1.0, round(mean)))
    finally:
        await rpc.close()


def fork_config(cfg: Config, url: str, chain_id: int, *, keep_address: bool) -> Config:
    """The keeper's config pointed at the fork: its URL and chain id, no record file, an in-memory
    store (nothing of the fork run is written where the real runs' records are), no minimum balance
    at start-up (the rehearsal funds the wallet after)."""
    chain = cfg.chain.model_copy(update={"rpc_url": url, "chain_id": chain_id})
    keeper = cfg.keeper.model_copy(update={"record_file": None, "min_native_balance": Decimal(0)})
    signer = cfg.signer if keep_address else cfg.signer.model_copy(update={"address": None})
    store = cfg.store.model_copy(update={"path": ":memory:"})
    return cfg.model_copy(update={"chain": chain, "keeper": keeper, "signer": signer, "store": store})


async def funding_needs(keeper: Keeper, block: int) -> dict[str, int]:
    """token -> what the plans of ``block`` would spend with an unlimited wallet, plus a margin."""
    await keeper.discovery.advance(block)
    await mirror(keeper.adapters, block)
    budget = {t: UNLIMITED for a in keeper.adapters for t in a.tokens()}
    needs: dict[str, int] = {}
    for a in keeper.adapters:
        for p in a.assess(budget).plans:
            for s in p.spends:
                needs[s.token] = needs.get(s.token, 0) + s.amount
    return {t: n * FUND_MARGIN_PCT // 100 for t, n in needs.items()}


async def rehearse(cfg: Config, opts: Options) -> Report:
    binary = find_anvil(opts.anvil)
    if opts.blocks < 1:
        raise ConfigError("--blocks: at least 1")
    real = await read_real_chain(opts.fork_url, opts.fork_block)
    if real.chain_id != cfg.chain.chain_id:
        raise StartupError(f"--fork-url is chain {real.chain_id}, the config's chain.chain_id is {cfg.chain.chain_id}")
    fork_id = opts.fork_chain_id or DEFAULT_FORK_CHAIN_ID
    if opts.fork_chain_id is None and fork_id == real.chain_id:
        fork_id += 1
    if fork_id == real.chain_id:
        raise ConfigError(f"--fork-chain-id {fork_id} is the real chain's id: transactions signed on the fork "
                          "would be valid on the real chain")
    block_time = opts.block_time or real.block_time
    signer = Signer(Account.create()) if opts.throwaway_key else load_signer(cfg)
    node = await ForkNode.start(binary, opts.fork_url, fork_block=real.fork_block, chain_id=fork_id,
                                block_time=block_time, base_fee=real.base_fee)
    try:
        kcfg = fork_config(cfg, node.url, fork_id, keep_address=not opts.throwaway_key)
        # The signer talks to the fork only: the keeper's one node is the fork, under another chain id.
        assert kcfg.chain.rpc_url == node.url and kcfg.chain.chain_id == fork_id != real.chain_id
        keeper = _WatchedKeeper(kcfg, signer, dry_run=False)
        keeper.first_seen = {}
        try:
            return await _run(keeper, opts, real, fork_id, block_time, redact(opts.fork_url))
        finally:
            await keeper.close()
    finally:
        await node.stop()


async def _run(keeper: _WatchedKeeper, opts: Options, real: RealChain, fork_id: int, block_time: float,
               shown_url: str) -> Report:
    await keeper.start()
    chain, me = keeper.chain, keeper.signer.address
    head = await chain.block_number()
    stamp = hexint((await chain.get_block(head))["timestamp"])
    feeds: dict[str, set[str]] = {}
    featureless = []
    for a in keeper.adapters:
        named = await a.price_feeds()
        if not named:
            featureless.append(a.name)
        for t, fs in named.items():
            feeds.setdefault(t, set()).update(fs)
    refs: set[PythFeedRef] = set()
    for a in keeper.adapters:
        refs |= await a.pyth_feeds()
    shocks: list[AppliedShock] = []
    pyth_shocks: list[AppliedPythShock] = []
    notes: list[str] = []
    if opts.shocks:
        pyth_hits = await resolve_pyth(chain, refs, list(opts.shocks))
        by_id = [s for s in opts.shocks if is_feed_id(s.token) and not any(h[0] == s for h in pyth_hits)]
        shocks = await apply_shocks(chain, await resolve(chain, feeds, list(opts.shocks),
                                                         frozenset(h[0] for h in pyth_hits) | frozenset(by_id)),
                                    stamp)
        pyth_shocks, notes = await _shock_pyth(keeper, pyth_hits, by_id, stamp)
    report = Report(real.chain_id, fork_id, shown_url, real.fork_block, block_time, real.base_fee, head, head, me,
                    shocks=shocks, pyth_shocks=pyth_shocks,
                    not_shocked=notes + _not_shocked(keeper, featureless) if opts.shocks else [])
    before = await chain.get_balance(me)
    if before < opts.fund_native_wei:
        await set_native_balance(chain, me, opts.fund_native_wei)
        report.funded.append(Funded("native", opts.fund_native_wei, before))
    for token, need in sorted((await funding_needs(keeper, head)).items()):
        (held,) = await chain.erc20_balances([(token, me)])
        if held < need:
            await set_erc20_balance(chain, token, me, need)
            report.funded.append(Funded(token, need, held))
    log.info("rehearse.ready", fork_chain_id=fork_id, block=head, shocks=len(shocks), funded=len(report.funded))
    end = head + opts.blocks
    last = head
    while last < end:
        now = await chain.block_number()
        if now > keeper.last_block:
            await chain.rpc.request("anvil_setNextBlockBaseFeePerGas", [hex(real.base_fee)])
            try:
                await keeper.step(now)
            except (StartupError, asyncio.CancelledError):
                raise
            except Exception as e:
                keeper.last_block = now
                report.step_errors.append(f"block {now}: {type(e).__name__}: {e}")
                log.error("rehearse.step_failed", block=now, error=str(e))
            last = now
        else:
            await asyncio.sleep(min(0.2, block_time / 4))
    with contextlib.suppress(TimeoutError):  # what the last blocks sent: mined, cancelled or dropped
        await keeper.settle(max(10.0, 4 * block_time))
    report.last_block = await chain.block_number()
    _rows(keeper, report)
    return report


async def _shock_pyth(keeper: Keeper, hits: list[tuple[Shock, str, PythFeedRef]], by_id: list[Shock],
                      stamp: int) -> tuple[list[AppliedPythShock], list[str]]:
    """Write the Pyth shocks in storage: the feeds protocols read from Pyth's store (their Pyth
    contract's, or the config's Pyth contracts' it forwards to), and feed ids no protocol names in
    the config's Pyth contracts; feeds read from signed updates only are noted, not shocked."""
    pull = keeper.cfg.pull_oracle
    own = [c for c in ((pull.pyth, pull.mock_pyth) if pull else ()) if c]
    written: Written = {}
    applied, notes = [], []
    targets = [(s, label, r.pyth, r.feed_id) for s, label, r in hits if r.reads_stored]
    for s in by_id:
        if not own:
            raise ConfigError(f"--price-shock {s.token}: no protocol of the config uses that Pyth feed and the "
                              "config names no Pyth contract (pull_oracle.pyth or pull_oracle.mock_pyth)")
        targets += [(s, s.token.lower(), c, s.token.lower()) for c in own]
    for s, label, pyth, feed_id in dict.fromkeys(targets):
        applied.append(await shock_pyth_price(keeper.chain, s, label, pyth, feed_id, stamp, own, written))
    for _, label, r in hits:
        if not r.reads_stored:
            notes.append(f"Pyth feed {r.feed_id} ({label}) of {r.pyth}: read from the signed update each commit "
                         "carries, not from Pyth's storage; the keeper's commits carry "
                         + ("prices built from the mock feeds' Chainlink answers" if pull and pull.source == "mock_pyth"
                            else "the price service's live prices"))
    return applied, sorted(set(notes))


def _not_shocked(keeper: Keeper, featureless: list[str]) -> list[str]:
    """What the shocks do not reach: protocols naming no Chainlink-style feed, live pull-oracle prices."""
    out = [f"{name}: names no Chainlink-style feed (its prices move only with feeds shocked for others)"
           for name in featureless]
    pull = keeper.cfg.pull_oracle
    if pull is not None and pull.source == "hermes":
        out.append("pull-oracle (Pyth) prices the keeper fetches: live signed prices from the price service, not "
                   "shocked (that would need an update signed by Pyth's guardians); a shock written in Pyth's "
                   "storage holds until an update published later is sent, e.g. with the keeper's own liquidations")
    return out


def _rows(keeper: _WatchedKeeper, report: Report) -> None:
    for o in keeper.recorder.outcomes:
        if o.status in (Status.CONFIRMED, Status.REVERTED, Status.FAILED, Status.CANCELLED, Status.DROPPED,
                        Status.PENDING):
            seen = keeper.first_seen.get((o.protocol, o.account))
            report.plans.append(PlanRow(
                o.protocol, o.account, o.accounts, o.label, o.status.value, usd(o.predicted_profit),
                usd(o.realised_profit), o.gas_used, o.status is Status.REVERTED, o.block,
                None if seen is None or o.block is None or o.kind is PlanKind.CLAIM else o.block - seen,
                o.reason, o.tx_hash))
        elif o.status is Status.SKIPPED:
            report.not_sent.append(NotSent(o.protocol, o.account, o.label,
                                           o.reason_code.value if o.reason_code else None, o.reason))


