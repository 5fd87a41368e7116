"""Execute: for each ranked plan, in order: leave out accounts the keeper has a transaction in flight
for (and those backing off after a failure), re-plan against what the wallet still holds, check the
gas price cap, add the approvals not already on chain or in flight, simulate after the keeper's own
unmined transactions, re-check profit with the simulated gas, then hand the plan to the transaction
manager (live) or report it (dry-run).

The manager journals and broadcasts it and returns at once: the plan is recorded as pending and its
final record comes when the chain has decided (keeper.engine.settle). Every plan of a block goes out
with consecutive nonces, so they land together."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog

from keeper.abi import load
from keeper.chain.client import AtHash, Chain
from keeper.chain.fees import GWEI, Fees
from keeper.chain.l1fee import NO_FEE, L1Fee, L2Kind, UnsignedTx, l1_fees, total
from keeper.chain.multicall import Call
from keeper.chain.sender import TxRequest
from keeper.engine.rank import Ranked, gas_cost_usd
from keeper.engine.record import Outcome, Recorder, Status
from keeper.engine.settle import APPROVALS_ONLY, BACKOFF_CODES, journal_details, plan_figures, token_deltas
from keeper.engine.simulate import Simulation, Simulator
from keeper.protocols.base import Adapter, Budget, Plan, Skip, SkipCode, Spend, no_inventory
from keeper.protocols.plan import jsonable
from keeper.send.manager import Submission, TxManager, approval_key
from keeper.store import TxKind

log = structlog.get_logger()
ERC20 = load("ERC20")
UINT_MAX = 2**256 - 1
MAX_NEXT_PLANS = 4  # plans tried after a simulation refusal, per account and block


@dataclass(frozen=True)
class Limits:
    min_profit: int  # USD 8 dec
    max_gas_price: int  # wei
    gas_margin_pct: int  # gas limit = simulated x this / 100 + 30k
    dry_run: bool
    backoff_blocks: int = 0  # blocks an account waits after its plan failed
    l2: L2Kind = "none"  # a rollup's L1 fee is part of a plan's cost (chain.l2)
    chain_id: int = 0  # of the transactions whose L1 fee is asked for

    def gas_limit(self, simulated: int) -> int:
        """The gas limit signed for a transaction that used ``simulated`` gas in simulation."""
        return simulated * self.gas_margin_pct // 100 + 30_000


class Executor:
    def __init__(self, chain: Chain, wallet: str, recorder: Recorder, limits: Limits, *,
                 manager: TxManager | None = None, simulator: Simulator | None = None):
        self.chain = chain
        self.wallet = wallet
        self.recorder = recorder
        self.limits = limits
        self.manager = manager  # None in dry-run: nothing is sent
        self.simulator = simulator or Simulator(chain)
        self._backoff: dict[tuple[str, str], int] = {}  # (protocol, account) -> first block it is planned again
        self.block = 0

    async def budget(self, tokens: set[str]) -> Budget:
        toks = sorted(tokens)
        bals = await self.chain.erc20_balances([(t, self.wallet) for t in toks])
        return dict(zip(toks, bals))

    def back_off(self, protocol: str, accounts: tuple[str, ...], block: int | None = None) -> None:
        """Leave these accounts alone for ``backoff_blocks`` blocks after ``block`` (default: now)."""
        if self.limits.backoff_blocks > 0:
            until = (self.block if block is None else block) + self.limits.backoff_blocks + 1
            for a in accounts:
                self._backoff[(protocol, a)] = until

    def _backing_off(self, plan: Plan) -> bool:
        keys = [(plan.protocol, a) for a in (plan.accounts or (plan.account,))]
        return any(self._backoff.get(k, 0) > self.block for k in keys)

    async def run(self, ranked: list[Ranked], adapters: dict[str, Adapter[Any]], budget: Budget,
                  fees: Fees, native_price: int, block: int = 0) -> list[Outcome]:
        """Simulate and send every plan in rank order; the outcomes decided now (skips, dry-runs,
        failures, and pending for what was sent).

        Live, on a node with eth_simulateV1, every plan that may be sent is simulated first in ONE
        request (Simulator.run_many: in rank order, after our unmined transactions); a plan uses
        that result as long as every plan before it went as simulated (sent as simulated, or
        refused and not sent) and it is the plan simulated (a re-plan with other transactions, or
        a next plan after a refusal, is simulated on its own). Once a plan went otherwise, the
        plans after it are simulated again, together, when their turn comes."""
        self.block = block
        in_flight = self.manager.in_flight(block) if self.manager is not None else set()
        results: list[Outcome] = []
        start_budget = dict(budget)
        batch: dict[int, _Batched] | None = None  # rank position -> its simulation in the batch
        for i, r in enumerate(ranked):
            accounts = r.plan.accounts or (r.plan.account,)
            if in_flight & {(r.plan.protocol, a) for a in accounts}:  # its record comes when the chain decides
                log.debug("plan.in_flight", protocol=r.plan.protocol, account=r.plan.account)
                continue
            if self._backing_off(r.plan):
                log.debug("plan.backing_off", protocol=r.plan.protocol, account=r.plan.account)
                continue
            plan: Plan | Skip = r.plan
            if any(budget.get(s.token, 0) < start_budget.get(s.token, 0) for s in r.plan.spends):
                # An earlier (more profitable) plan spent from the same balance: plan again.
                plan = adapters[r.plan.protocol].replan(r.plan, budget)
            if isinstance(plan, Skip):  # the re-plan found nothing left to do it with
                results.append(self._skip(r, r.plan, plan))
                if batch is not None and i in batch and batch[i].sim.ok:
                    batch = None  # simulated as sent: the plans after it met its state
                continue
            same = plan.txs == r.plan.txs and plan.spends == r.plan.spends  # else re-planned: simulated alone
            if batch is None and same and self._batching():
                batch = await self._simulate_rest(ranked[i:], i, in_flight, budget, fees, native_price)
            pre = batch.get(i) if batch is not None and same else None
            res = await self._one(r, plan, budget, fees, native_price, pre)
            if isinstance(res, Refused):
                res = await self._next_plans(r, res, adapters.get(plan.protocol), budget, fees, native_price)
            results.append(res)
            if batch is not None and i in batch and not self._as_simulated(batch[i], pre, res):
                batch = None
        return results

    def _batching(self) -> bool:
        """Plans are simulated together: live, on a node known to have eth_simulateV1."""
        return self.manager is not None and not self.limits.dry_run and self.simulator.has_simulate_v1 is True

    @staticmethod
    def _as_simulated(batched: _Batched, used: _Batched | None, res: Outcome) -> bool:
        """Whether the plan went as the batch simulated it: sent whole, as simulated there; or
        refused there and nothing sent for it."""
        sent = res.status is Status.PENDING
        if batched.sim.ok:
            return sent and used is batched and not res.reason  # a reason: sent in part
        return not sent

    async def _simulate_rest(self, ranked: Sequence[Ranked], first: int, in_flight: set[tuple[str, str]],
                             budget: Budget, fees: Fees, native_price: int) -> dict[int, _Batched]:
        """The plans from rank ``first`` on that may be sent as they stand (not in flight or backing
        off, passing the checks made before simulating), each with the approvals it needs, simulated
        in one request (Simulator.run_many). Empty when fewer than two plans are left (each is then
        simulated on its own) or the node has no eth_simulateV1."""
        todo: list[tuple[int, Plan]] = []
        for i, r in enumerate(ranked, start=first):
            p = r.plan
            if in_flight & {(p.protocol, a) for a in (p.accounts or (p.account,))} or self._backing_off(p):
                continue
            if self._precheck(p, budget, fees, native_price) is None:
                todo.append((i, p))
        if len(todo) < 2:
            return {}
        needs = await self._approvals_many([p for _, p in todo])
        at, after = await self._state_for_simulation()
        sims = await self.simulator.run_many(self.wallet, [a + list(p.txs) for (_, p), (a, _) in zip(todo, needs)],
                                             after=after, block=at)
        if sims is None:
            return {}
        first_gas: dict[tuple[str, str], int] = {}  # an approval's gas where it first runs (on chain state)
        for (a, _), sim in zip(needs, sims):
            for tx, g in zip(a, sim.gas_used):
                first_gas.setdefault(approval_key(tx), g)
        out: dict[int, _Batched] = {}
        for (i, p), (a, _), sim in zip(todo, needs, sims):
            if sim.ok:  # an approval another plan ran first was a no-op here: its gas as where it ran first
                gas = [max(g, first_gas.get(approval_key(tx), g)) for tx, g in zip(a, sim.gas_used)]
                sim = replace(sim, gas_used=gas + sim.gas_used[len(a):])
            out[i] = _Batched(p, a, sim, at)
        log.debug("simulate.batch", plans=len(todo), refused=sum(1 for s in sims if not s.ok))
        return out

    async def _state_for_simulation(self) -> tuple[int | str | AtHash, list[TxRequest]]:
        """The state a simulation runs on and what of ours runs first: with something in flight, one
        block's state (named by hash) after what of ours is not mined there (by receipts), never
        before our last receipt's block; with nothing in flight, the latest."""
        if self.manager is None or not self.manager.slots:
            return "latest", []
        head = await self.chain.head()
        at = head if head.number >= self.manager.last_mined else self.manager.last_mined
        return at, await self.manager.unmined_at(at)

    @staticmethod
    def _outcome(status: Status, r: Ranked, plan: Plan, reason: str | None, **kw: Any) -> Outcome:
        """An outcome of ``plan`` (``r``'s, or its re-plan), where it stood in the ranking."""
        return Outcome(status, plan.protocol, plan.account, plan.label, reason, kind=plan.kind,
                       accounts=plan.accounts, rank=r.position, ranked_net=r.net_usd, **kw)

    def _skip(self, r: Ranked, plan: Plan, skip: Skip, *, backoff: bool = True, **kw: Any) -> Outcome:
        if backoff and skip.code in BACKOFF_CODES:
            self.back_off(plan.protocol, plan.accounts or (plan.account,))
        return self.recorder.add(self._outcome(Status.SKIPPED, r, plan, skip.message, reason_code=skip.code, **kw))

    async def _next_plans(self, r: Ranked, refused: Refused, adapter: Adapter[Any] | None, budget: Budget,
                          fees: Fees, native_price: int) -> Outcome:
        """Simulation refused a plan: record the refusal (once: the adapter remembers it and does
        not offer the same plan again while the account is unchanged), then try the adapter's next
        plans, up to MAX_NEXT_PLANS, until one is not refused. The account backs off only when none
        is left."""
        alts = adapter.alternatives(refused.plan, refused.reason, budget) if adapter else []
        if not alts:
            return self._skip(r, refused.plan, Skip(SkipCode.SIMULATION_REVERT, f"simulation: {refused.reason}"))
        self._skip(r, refused.plan, Skip(SkipCode.SIMULATION_REVERT,
                                         f"simulation: {refused.reason}; next plan: {alts[0].label}"), backoff=False)
        for _ in range(MAX_NEXT_PLANS):
            res = await self._one(r, alts[0], budget, fees, native_price)
            if not isinstance(res, Refused):
                return res
            refused = res
            alts = adapter.alternatives(refused.plan, refused.reason, budget) if adapter else []
            if not alts:
                break
        return self._skip(r, refused.plan, Skip(SkipCode.SIMULATION_REVERT,
                                                f"simulation: {refused.reason} (a next plan)"))

    def _precheck(self, plan: Plan, budget: Budget, fees: Fees, native_price: int) -> tuple[Skip, int | None] | None:
        """Why the plan is skipped before simulating (the gas price cap, a profit that cannot pay
        even with no gas, the wallet's balance), with the profit it was predicted; None: simulate."""
        lim = self.limits
        price = fees.base_fee + fees.priority_fee  # what the next block would take (the cap aside)
        if price > lim.max_gas_price:
            return Skip(SkipCode.GAS_PRICE_CAP, f"gas price {price / GWEI:.2f} gwei above "
                                                f"max_gas_price_gwei {lim.max_gas_price / GWEI:.2f}"), None
        native_usd = gas_cost_usd(plan.native_spent, 1, native_price)  # e.g. a pull-oracle fee
        # The profit gate is the simulated gas (below): before simulating, only a plan that cannot
        # pay even with no gas is dropped (a gas estimate may be off either way).
        est_net = plan.gross_usd - native_usd
        if est_net < lim.min_profit and not plan.force:
            why = (f"expected profit {est_net / 1e8:.2f} USD before gas below min_profit_usd "
                   f"{lim.min_profit / 1e8:.2f}")
            return self._short(plan, budget, why) or Skip(SkipCode.BELOW_MIN_PROFIT, why), est_net
        for s in plan.spends:
            if budget.get(s.token, 0) < s.amount:
                return no_inventory(s.token, budget.get(s.token, 0), s.amount, plan.prices.get(s.token)), None
        return None

    async def _one(self, r: Ranked, plan: Plan, budget: Budget, fees: Fees,
                   native_price: int, pre: _Batched | None = None) -> Outcome | Refused:
        """One plan: checks, approvals, simulation (``pre``: its result in the block's batch), the
        profit after simulated gas, then hand it to the manager."""
        lim = self.limits
        skip = self._precheck(plan, budget, fees, native_price)
        if skip is not None:
            early, predicted_before = skip
            if predicted_before is None:
                return self._skip(r, plan, early)
            return self._skip(r, plan, early, predicted_profit=predicted_before)
        native_usd = gas_cost_usd(plan.native_spent, 1, native_price)
        if pre is not None:
            approvals, sim, at = self._still_needed(pre)
        else:
            approvals, waiting = await self._approvals(plan)
            if self.simulator.has_simulate_v1 is False and (approvals or waiting) and len(plan.txs) == 1:
                # Checked alone (eth_call) the plan would fail on its allowance: approvals first.
                return await self._approve_first(r, plan, approvals, fees, native_price)
            at, after = await self._state_for_simulation()
            sim = await self.simulator.run(self.wallet, approvals + list(plan.txs), after=after, block=at)
            if not sim.ok and sim.estimated and (approvals or waiting) and len(plan.txs) == 1:
                return await self._approve_first(r, plan, approvals, fees, native_price)
        if not sim.ok:
            return Refused(plan, sim.reason or "refused")
        if plan.expected_from_simulation and sim.raw_logs:
            # e.g. a swap inside the transaction: it pays what the pool gives after this block's earlier trades.
            plan = replace(plan, expected=token_deltas(sim.logs, self.wallet, set(plan.prices)))
        gas = sum(sim.gas_used[len(approvals):])
        gas_usd = gas_cost_usd(gas, fees.expected_price, native_price)
        margin = [lim.gas_limit(g) for g in sim.gas_used]
        gross_wei = plan.gross_usd * 10**18 // max(native_price, 1)
        sends = approvals + list(plan.txs)
        l1 = await self._l1_fees(sends, margin, fees, gross_wei, gas, at.number if isinstance(at, AtHash) else at)
        l1_usd = gas_cost_usd(total(l1).wei, 1, native_price)
        margin = [g + f.l1_gas for g, f in zip(margin, l1)]  # Arbitrum: the L1 part is paid in L2 gas
        predicted = plan.gross_usd - gas_usd - l1_usd - native_usd
        worth = plan.gross_usd + plan.collects_usd
        l1_note = f" and L1 fee ({l1_usd / 1e8:.4f} USD)" if lim.l2 != "none" else ""
        if plan.min_gas_multiple is not None and worth < plan.min_gas_multiple * (gas_usd + l1_usd):
            return self._skip(r, plan, Skip(SkipCode.BELOW_GAS_MULTIPLE,
                                            f"worth {worth / 1e8:.4f} USD, below {plan.min_gas_multiple} x its "
                                            f"gas cost {gas_usd / 1e8:.4f} USD{l1_note}"), predicted_profit=predicted)
        if predicted < lim.min_profit and not plan.force:
            why = (f"profit after simulated gas{l1_note} {predicted / 1e8:.2f} USD below min_profit_usd "
                   f"{lim.min_profit / 1e8:.2f}")
            return self._skip(r, plan, self._short(plan, budget, why) or Skip(SkipCode.BELOW_MIN_PROFIT, why),
                              predicted_profit=predicted)
        details: dict[str, Any] = {**plan.report(), "gas_simulated": gas, "gas_price_wei": fees.expected_price,
                                   "gross_profit_usd": plan.gross_usd / 1e8, "gas_cost_usd": gas_usd / 1e8,
                                   "approvals": len(approvals)}
        if plan.native_spent:
            details["native_spent_wei"] = plan.native_spent
        if lim.l2 != "none":
            details.update(l1_fee_wei=total(l1).wei, l1_fee_usd=l1_usd / 1e8)
            if total(l1).l1_gas:
                details["l1_gas"] = total(l1).l1_gas
        if plan.deferred or plan.collects:
            details["deferred"] = {t: str(a) for t, a in plan.deferred.items()}
            details["collects"] = {t: str(a) for t, a in plan.collects.items()}
        if lim.dry_run or self.manager is None:
            return self.recorder.add(self._outcome(Status.DRY_RUN, r, plan, "dry-run: simulated, not sent",
                                                   predicted_profit=predicted, gas_used=gas, details=details))
        txs = tuple([(TxKind.APPROVAL, replace(tx, gas=g)) for tx, g in zip(approvals, margin)]
                    + [(TxKind.LIQUIDATION, replace(tx, gas=g)) for tx, g in zip(plan.txs, margin[len(approvals):])])
        record = {"account": plan.account, "label": plan.label, "kind": plan.kind.value,
                  "accounts": list(plan.accounts), "rank": r.position, "ranked_net": r.net_usd,
                  "predicted_profit": predicted, "details": jsonable(details)}
        figures = plan_figures(dict(plan.prices), dict(plan.collects), dict(plan.deferred), plan.native_spent,
                               [t.what for t in plan.txs], native_price)
        sub = Submission(plan.protocol, plan.accounts or (plan.account,), plan.kind.value, self.block, txs,
                         gross_wei=gross_wei, gas=gas + total(l1[len(approvals):]).l1_gas,
                         details=journal_details(record, figures))
        sent = await self.manager.submit(sub, fees)
        if not sent.hashes:
            self.back_off(plan.protocol, plan.accounts or (plan.account,))
            return self.recorder.add(self._outcome(Status.FAILED, r, plan, sent.error, predicted_profit=predicted,
                                                   details=details, attempt=sent.attempt_id))
        for sp in plan.spends:  # reserved until the chain decides: later plans get the rest
            budget[sp.token] = budget.get(sp.token, 0) - sp.amount
        out = {**details, "tx_hashes": list(sent.hashes)}
        if sent.error:
            out["send_error"] = sent.error
        return self.recorder.add(self._outcome(Status.PENDING, r, plan, sent.error, predicted_profit=predicted,
                                               tx_hash=sent.hashes[-1], details=out, attempt=sent.attempt_id))

    async def _l1_fees(self, txs: Sequence[TxRequest], gas_limits: Sequence[int], fees: Fees, gross_wei: int,
                       gas: int, block: int | str) -> list[L1Fee]:
        """The L1 fee of each transaction a plan sends, as the manager will sign it (its fees for the
        plan, consecutive nonces from its next one, the gas limits with margin), in one batch."""
        lim = self.limits
        if lim.l2 == "none":
            return [NO_FEE] * len(txs)
        signed = self.manager.policy.first(fees, gross_wei=gross_wei, gas=gas) if self.manager else fees
        nonce = self.manager.next_nonce if self.manager is not None else None
        if nonce is None:
            nonce = await self.chain.nonce(self.wallet)
        return await l1_fees(self.chain, lim.l2, [
            UnsignedTx(lim.chain_id, tx.to, tx.data, tx.value, nonce + i, g, signed.max_fee, signed.priority_fee)
            for i, (tx, g) in enumerate(zip(txs, gas_limits, strict=True))], block)

    async def l1_estimates(self, plans: Sequence[Plan], fees: Fees) -> list[int]:
        """Each plan's L1 fee (wei) for ranking, before its approvals and simulation are known: its
        transactions at the plan's gas estimate and the market fees, every plan's in one batch."""
        lim = self.limits
        if lim.l2 == "none" or not plans:
            return [0] * len(plans)
        nonce = (self.manager.next_nonce if self.manager is not None else None) or 0
        gas = [lim.gas_limit(p.gas_estimate) for p in plans]
        txs = [(i, UnsignedTx(lim.chain_id, tx.to, tx.data, tx.value, nonce, gas[i], fees.max_fee,
                              fees.priority_fee)) for i, p in enumerate(plans) for tx in p.txs]
        out = [0] * len(plans)
        for (i, _), f in zip(txs, await l1_fees(self.chain, lim.l2, [t for _, t in txs])):
            out[i] += f.wei
        return out

    async def _approve_first(self, r: Ranked, plan: Plan, approvals: list[TxRequest], fees: Fees,
                             native_price: int) -> Outcome:
        """A node without eth_simulateV1 cannot run a plan after its approvals: the approvals (each
        checked alone) go out now and the plan is simulated on a later block, once they are mined
        (the accounts are in flight meanwhile)."""
        why = "node has no eth_simulateV1: approvals first, the plan is simulated once they are mined"
        if self.limits.dry_run or self.manager is None:
            return self._skip(r, plan, Skip(SkipCode.APPROVING, f"{why} (dry-run: not sent)"))
        if not approvals:  # in flight already (an earlier plan's): wait for them to be mined
            return self._skip(r, plan, Skip(SkipCode.APPROVING, why))
        txs: list[tuple[TxKind, TxRequest]] = []
        for tx in approvals:
            sim = await self.simulator.run(self.wallet, [tx])
            if not sim.ok:
                return self._skip(r, plan, Skip(SkipCode.SIMULATION_REVERT, f"simulation: {sim.reason}"))
            txs.append((TxKind.APPROVAL, replace(tx, gas=self.limits.gas_limit(sim.gas_used[0]))))
        sub = Submission(plan.protocol, plan.accounts or (plan.account,), APPROVALS_ONLY, self.block, tuple(txs),
                         gross_wei=plan.gross_usd * 10**18 // max(native_price, 1),
                         gas=sum(t.gas or 0 for _, t in txs))
        sent = await self.manager.submit(sub, fees)
        if not sent.hashes:
            return self._skip(r, plan, Skip(SkipCode.APPROVING, f"{why}; {sent.error}"))
        return self._skip(r, plan, Skip(SkipCode.APPROVING, why))

    @staticmethod
    def _short(plan: Plan, budget: Budget, why: str) -> Skip | None:
        """NO_INVENTORY when the wallet's balance shrank the plan (``plan.shortfall``) to one that does
        not pay: the wallet lacks funds, more than the liquidation lacks profit."""
        s = plan.shortfall
        if s is None:
            return None
        return no_inventory(s.token, budget.get(s.token, 0), s.amount, plan.prices.get(s.token),
                            f"the part it can pay is too small ({why})")

    def _still_needed(self, pre: _Batched) -> tuple[list[TxRequest], Simulation, int | str | AtHash]:
        """The batch's approvals of a plan but those an earlier plan of this block sent meanwhile
        (the plan's own transactions do not depend on which of the two sends it), with the
        simulation's gas to match."""
        flying = self.manager.pending_approvals() if self.manager is not None else set()
        keep = [k for k, tx in enumerate(pre.approvals) if approval_key(tx) not in flying]
        if len(keep) == len(pre.approvals):
            return list(pre.approvals), pre.sim, pre.at
        n = len(pre.approvals)
        sim = replace(pre.sim, gas_used=[pre.sim.gas_used[k] for k in keep] + pre.sim.gas_used[n:])
        return [pre.approvals[k] for k in keep], sim, pre.at

    async def _approvals(self, plan: Plan) -> tuple[list[TxRequest], list[TxRequest]]:
        """Approvals the plan needs (allowance on chain too low): (those to send, those in flight
        already)."""
        return (await self._approvals_many([plan]))[0]

    async def _approvals_many(self, plans: Sequence[Plan]) -> list[tuple[list[TxRequest], list[TxRequest]]]:
        """Each plan's approvals, as ``_approvals``, every allowance read in one multicall; each
        plan's on its own (a plan does not count on another's approval)."""
        fn = ERC20.fn("allowance")
        spends = [s for p in plans for s in p.spends]
        allowances = await self.chain.multicall_strict(
            [Call(s.token, fn.encode(self.wallet, s.spender), fn.decode) for s in spends]) if spends else []
        flying = self.manager.pending_approvals() if self.manager is not None else set()
        out: list[tuple[list[TxRequest], list[TxRequest]]] = []
        at = 0
        for p in plans:
            n = len(p.spends)
            out.append(self._needed(p.spends, allowances[at:at + n], flying))
            at += n
        return out

    @staticmethod
    def _needed(spends: Sequence[Spend], allowances: Sequence[int],
                flying: set[tuple[str, str]]) -> tuple[list[TxRequest], list[TxRequest]]:
        out: list[TxRequest] = []
        waiting: list[TxRequest] = []
        for s, a in zip(spends, allowances):
            tx = TxRequest(s.token, ERC20.fn("approve").encode(s.spender, UINT_MAX),
                           what=f"approve {s.token[:10]} for {s.spender[:10]}")
            key = approval_key(tx)
            if a >= s.amount or key in map(approval_key, out + waiting):
                continue
            (waiting if key in flying else out).append(tx)
        return out, waiting


@dataclass(frozen=True)
class _Batched:
    """A plan as simulated in its block's batch: the approvals it carried and the result."""
    plan: Plan
    approvals: list[TxRequest]
    sim: Simulation
    at: int | str | AtHash


@dataclass(frozen=True)
class Refused:
    """Simulation refused ``plan`` (not recorded yet: the adapter may have a next plan)."""
    plan: Plan
    reason: str
