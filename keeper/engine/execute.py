"""Execute: for each ranked plan, in order: re-plan against what the wallet still holds, check the
gas price cap, add approvals, simulate, re-check profit with the simulated gas, then send (live) or
report (dry-run). Every plan of a block goes out before any receipt is awaited (consecutive nonces),
so they land together; then each is recorded with the realised profit from its receipts' token
transfers."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from keeper.abi import load
from keeper.chain.client import ERC20_TRANSFER_TOPIC, Chain, Log
from keeper.chain.fees import GWEI, Fees
from keeper.chain.multicall import Call
from keeper.chain.sender import Receipt, Sender, TxRequest
from keeper.engine.rank import Ranked, gas_cost_usd
from keeper.engine.record import Outcome, Recorder, Status
from keeper.engine.simulate import simulate
from keeper.errors import RpcError
from keeper.protocols.base import Adapter, Budget, Plan, Skip, SkipCode, no_inventory, value_usd

log = structlog.get_logger()
ERC20 = load("ERC20")
UINT_MAX = 2**256 - 1
APPROVE_GAS = 60_000
MAX_NEXT_PLANS = 4  # plans tried after a simulation refusal, per account and block


@dataclass(frozen=True)
class Limits:
    min_profit: int  # USD 8 dec
    max_gas_price: int  # wei
    gas_margin_pct: int  # gas limit = simulated x this / 100 + 30k
    dry_run: bool


def token_deltas(logs: list[Log], wallet: str, tokens: set[str]) -> dict[str, int]:
    """Net ERC20 transfers to/from ``wallet`` in ``logs``, per token."""
    w = wallet.lower()[2:]
    out: dict[str, int] = {}
    for lg in logs:
        if lg.address not in tokens or len(lg.topics) != 3 or lg.topics[0] != ERC20_TRANSFER_TOPIC:
            continue
        amount = int.from_bytes(lg.data[:32], "big")
        if lg.topics[2].endswith(w):
            out[lg.address] = out.get(lg.address, 0) + amount
        if lg.topics[1].endswith(w):
            out[lg.address] = out.get(lg.address, 0) - amount
    return out


class Executor:
    def __init__(self, chain: Chain, sender: Sender, recorder: Recorder, limits: Limits):
        self.chain = chain
        self.sender = sender
        self.wallet = sender.signer.address
        self.recorder = recorder
        self.limits = limits
        self._approving: set[tuple[str, str]] = set()  # (token, spender) approvals sent this block
        self._sent: list[tuple[str, TxRequest]] = []  # (hash, tx) sent this block, receipts not seen

    async def budget(self, tokens: set[str]) -> Budget:
        toks = sorted(tokens)
        bals = await self.chain.erc20_balances([(t, self.wallet) for t in toks])
        return dict(zip(toks, bals))

    async def run(self, ranked: list[Ranked], adapters: dict[str, Adapter[Any]], budget: Budget,
                  fees: Fees, native_price: int) -> list[Outcome]:
        """Simulate and send every plan in rank order without waiting for receipts (consecutive
        nonces: a block's worth of liquidations lands in the next block, not one per block), then
        wait for all the receipts and record each plan in rank order."""
        results: list[Outcome | InFlight] = []
        start_budget = dict(budget)
        self._approving = set()
        self._sent = []
        for r in ranked:
            plan: Plan | Skip = r.plan
            if any(budget.get(s.token, 0) < start_budget.get(s.token, 0) for s in r.plan.spends):
                # An earlier (more profitable) plan spent from the same balance: plan again.
                plan = adapters[r.plan.protocol].replan(r.plan, budget)
            if isinstance(plan, Skip):  # the re-plan found nothing left to do it with
                results.append(self._skip(r, r.plan, plan))
                continue
            res = await self._one(r, plan, budget, fees, native_price)
            if isinstance(res, Refused):
                res = await self._next_plans(r, res, adapters.get(plan.protocol), budget, fees, native_price)
            if isinstance(res, InFlight):
                for sp in res.plan.spends:  # reserved until the receipts are in: later plans get the rest
                    budget[sp.token] = budget.get(sp.token, 0) - sp.amount
            results.append(res)
        flying = [x for x in results if isinstance(x, InFlight)]
        receipts = await asyncio.gather(*(self._receipts(x) for x in flying))
        done = dict(zip(map(id, flying), receipts))
        return [self.recorder.add(self._settle(x, done[id(x)], native_price)) if isinstance(x, InFlight) else x
                for x in results]

    @staticmethod
    def _outcome(status: Status, r: Ranked, plan: Plan, reason: str | None, **kw: Any) -> Outcome:
        """An outcome of ``plan`` (``r``'s, or its re-plan), where it stood in the ranking."""
        return Outcome(status, plan.protocol, plan.account, plan.label, reason, kind=plan.kind,
                       accounts=plan.accounts, rank=r.position, ranked_net=r.net_usd, **kw)

    def _skip(self, r: Ranked, plan: Plan, skip: Skip, **kw: Any) -> Outcome:
        return self.recorder.add(self._outcome(Status.SKIPPED, r, plan, skip.message, reason_code=skip.code, **kw))

    async def _next_plans(self, r: Ranked, refused: Refused, adapter: Adapter[Any] | None, budget: Budget,
                          fees: Fees, native_price: int) -> Outcome | InFlight:
        """Simulation refused a plan: record the refusal (once: the adapter remembers it and does
        not offer the same plan again while the account is unchanged), then try the adapter's next
        plans, up to MAX_NEXT_PLANS, until one is not refused."""
        alts = adapter.alternatives(refused.plan, refused.reason, budget) if adapter else []
        if not alts:
            return self._skip(r, refused.plan, Skip(SkipCode.SIMULATION_REVERT, f"simulation: {refused.reason}"))
        self._skip(r, refused.plan, Skip(SkipCode.SIMULATION_REVERT,
                                         f"simulation: {refused.reason}; next plan: {alts[0].label}"))
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

    async def _one(self, r: Ranked, plan: Plan, budget: Budget, fees: Fees,
                   native_price: int) -> Outcome | InFlight | Refused:
        lim = self.limits
        if fees.expected_price > lim.max_gas_price:
            return self._skip(r, plan, Skip(SkipCode.GAS_PRICE_CAP,
                                            f"gas price {fees.expected_price / GWEI:.2f} gwei above "
                                            f"max_gas_price_gwei {lim.max_gas_price / GWEI:.2f}"))
        native_usd = gas_cost_usd(plan.native_spent, 1, native_price)  # e.g. a pull-oracle fee
        # The profit gate is the simulated gas (below): before simulating, only a plan that cannot
        # pay even with no gas is dropped (a gas estimate may be off either way).
        est_net = plan.gross_usd - native_usd
        if est_net < lim.min_profit and not plan.force:
            why = (f"expected profit {est_net / 1e8:.2f} USD before gas below min_profit_usd "
                   f"{lim.min_profit / 1e8:.2f}")
            return self._skip(r, plan, self._short(plan, budget, why) or Skip(SkipCode.BELOW_MIN_PROFIT, why),
                              predicted_profit=est_net)
        for s in plan.spends:
            if budget.get(s.token, 0) < s.amount:
                return self._skip(r, plan, no_inventory(s.token, budget.get(s.token, 0), s.amount,
                                                        plan.prices.get(s.token)))
        approvals = await self._approvals(plan)
        sim = await simulate(self.chain, self.wallet, approvals + list(plan.txs), after=await self._unmined())
        if not sim.ok and sim.estimated and approvals and len(plan.txs) == 1:
            return await self._approve_first(r, plan, approvals, fees)
        if not sim.ok:
            return Refused(plan, sim.reason or "refused")
        if plan.expected_from_simulation and sim.logs:
            # e.g. a swap inside the transaction: it pays what the pool gives after this block's earlier trades.
            plan = replace(plan, expected=token_deltas(sim.logs, self.wallet, set(plan.prices)))
        gas = sum(sim.gas_used[len(approvals):])
        gas_usd = gas_cost_usd(gas, fees.expected_price, native_price)
        predicted = plan.gross_usd - gas_usd - native_usd
        worth = plan.gross_usd + plan.collects_usd
        if plan.min_gas_multiple is not None and worth < plan.min_gas_multiple * gas_usd:
            return self._skip(r, plan, Skip(SkipCode.BELOW_GAS_MULTIPLE,
                                            f"worth {worth / 1e8:.4f} USD, below {plan.min_gas_multiple} x its "
                                            f"gas cost {gas_usd / 1e8:.4f} USD"), predicted_profit=predicted)
        if predicted < lim.min_profit and not plan.force:
            why = (f"profit after simulated gas {predicted / 1e8:.2f} USD below min_profit_usd "
                   f"{lim.min_profit / 1e8:.2f}")
            return self._skip(r, plan, self._short(plan, budget, why) or Skip(SkipCode.BELOW_MIN_PROFIT, why),
                              predicted_profit=predicted)
        details: dict[str, Any] = {**plan.report(), "gas_simulated": gas, "gas_price_wei": fees.expected_price,
                                   "gross_profit_usd": plan.gross_usd / 1e8, "gas_cost_usd": gas_usd / 1e8,
                                   "approvals": len(approvals)}
        if plan.native_spent:
            details["native_spent_wei"] = plan.native_spent
        if plan.deferred or plan.collects:
            details["deferred"] = {t: str(a) for t, a in plan.deferred.items()}
            details["collects"] = {t: str(a) for t, a in plan.collects.items()}
        if lim.dry_run:
            return self.recorder.add(self._outcome(Status.DRY_RUN, r, plan, "dry-run: simulated, not sent",
                                                   predicted_profit=predicted, gas_used=gas, details=details))
        flight = InFlight(r, plan, predicted, details)
        for i, (tx, g) in enumerate(zip(approvals + list(plan.txs), sim.gas_used)):
            approval = (tx.to, "0x" + tx.data[16:36].hex()) if i < len(approvals) else None
            if approval in self._approving:
                continue  # an earlier plan of this block already sent the same approval
            try:
                tx_hash = await self.sender.send(replace(tx, gas=g * lim.gas_margin_pct // 100 + 30_000), fees)
            except RpcError as e:
                if not flight.hashes and not flight.approvals:
                    return self.recorder.add(self._outcome(Status.FAILED, r, plan, f"sending {tx.what} failed: {e}",
                                                           predicted_profit=predicted, details=details))
                flight.send_error = f"sending {tx.what} failed after earlier transactions went out: {e}"
                break
            if approval is not None:
                self._approving.add(approval)
                flight.approvals.append(tx_hash)
            else:
                flight.hashes.append(tx_hash)
            self._sent.append((tx_hash, tx))
        return flight

    async def _approve_first(self, r: Ranked, plan: Plan, approvals: list[TxRequest], fees: Fees) -> Outcome:
        """A node without eth_simulateV1 cannot run a plan after its approvals: the approvals (each
        estimated alone) go out now and the plan is simulated on a later block, once they are mined."""
        why = "node has no eth_simulateV1: approvals first, the plan is simulated once they are mined"
        if self.limits.dry_run:
            return self._skip(r, plan, Skip(SkipCode.SIMULATION_REVERT, f"simulation: {why} (dry-run: not sent)"))
        for tx in approvals:
            key = (tx.to, "0x" + tx.data[16:36].hex())
            if key in self._approving:
                continue
            sim = await simulate(self.chain, self.wallet, [tx])
            if not sim.ok:
                return self._skip(r, plan, Skip(SkipCode.SIMULATION_REVERT, f"simulation: {sim.reason}"))
            gas = sim.gas_used[0] * self.limits.gas_margin_pct // 100 + 30_000
            try:
                tx_hash = await self.sender.send(replace(tx, gas=gas), fees)
            except RpcError as e:
                return self._skip(r, plan, Skip(SkipCode.SIMULATION_REVERT, f"sending {tx.what} failed: {e}"))
            self._approving.add(key)
            self._sent.append((tx_hash, tx))
        return self._skip(r, plan, Skip(SkipCode.PENDING, f"simulation: {why}"))

    @staticmethod
    def _short(plan: Plan, budget: Budget, why: str) -> Skip | None:
        """NO_INVENTORY when the wallet's balance shrank the plan (``plan.shortfall``) to one that does
        not pay: the wallet lacks funds, more than the liquidation lacks profit."""
        s = plan.shortfall
        if s is None:
            return None
        return no_inventory(s.token, budget.get(s.token, 0), s.amount, plan.prices.get(s.token),
                            f"the part it can pay is too small ({why})")

    async def _unmined(self) -> list[TxRequest]:
        """This block's transactions that are sent and not mined yet, in nonce order."""
        if not self._sent:
            return []
        receipts = await self.chain.rpc.batch([("eth_getTransactionReceipt", [h]) for h, _ in self._sent],
                                              raise_errors=False)
        self._sent = [(h, tx) for (h, tx), r in zip(self._sent, receipts) if not isinstance(r, dict)]
        return [tx for _, tx in self._sent]

    async def _approvals(self, plan: Plan) -> list[TxRequest]:
        fn = ERC20.fn("allowance")
        allowances = await self.chain.multicall_strict(
            [Call(s.token, fn.encode(self.wallet, s.spender), fn.decode) for s in plan.spends])
        return [TxRequest(s.token, ERC20.fn("approve").encode(s.spender, UINT_MAX),
                          what=f"approve {s.token[:10]} for {s.spender[:10]}")
                for s, a in zip(plan.spends, allowances) if a < s.amount]

    async def _receipts(self, flight: InFlight) -> list[Receipt] | str:
        """The plan's receipts (approvals first), or why they could not be had."""
        try:
            return list(await asyncio.gather(*(self.sender.wait(h) for h in flight.approvals + flight.hashes)))
        except RpcError as e:
            await self.sender.nonces.resync()
            return f"waiting for receipts failed: {e}"

    def _settle(self, flight: InFlight, got: list[Receipt] | str, native_price: int) -> Outcome:
        r, plan, predicted, details = flight.ranked, flight.plan, flight.predicted, flight.details

        def outcome(status: Status, why: str | None, **kw: Any) -> Outcome:
            kw.setdefault("details", details)
            return self._outcome(status, r, plan, why, predicted_profit=predicted, **kw)

        if isinstance(got, str):
            return outcome(Status.FAILED, got)
        approvals, receipts = got[:len(flight.approvals)], got[len(flight.approvals):]
        bad = [rc for rc in approvals if rc.status != 1]
        if bad:
            return outcome(Status.FAILED, "approval reverted", tx_hash=bad[0].tx_hash)
        if not receipts:
            return outcome(Status.FAILED, flight.send_error or "nothing was sent")
        logs = [lg for rc in receipts for lg in rc.logs]
        deltas = token_deltas(logs, self.wallet, set(plan.prices))
        gas_used = sum(rc.gas_used for rc in receipts)
        hashes = [rc.tx_hash for rc in receipts]
        reverted = [(i, rc) for i, rc in enumerate(receipts) if rc.status != 1]
        if reverted:
            i, rc = reverted[0]
            # Nothing was liquidated but the gas is paid: a loss of the fees, at the step's native price.
            gas_paid = sum(rc.fee_paid for rc in receipts)
            return outcome(Status.REVERTED, f"{plan.txs[i].what} reverted on chain", tx_hash=rc.tx_hash,
                           block=rc.block_number, gas_used=gas_used,
                           realised_profit=-(gas_paid * native_price // 10**18),
                           details={**details, "tx_hashes": hashes, "gas_paid_wei": gas_paid})
        if flight.send_error:  # part of the plan is on chain, the rest could not be sent
            return outcome(Status.FAILED, flight.send_error, tx_hash=hashes[-1],
                           details={**details, "tx_hashes": hashes})
        last = receipts[-1]
        fee_paid = sum(rc.fee_paid for rc in receipts) + plan.native_spent  # gas + native value sent
        # Accrual: deferred credits are booked now; a claim counts only what differs from what it collects.
        booked = {t: deltas.get(t, 0) - plan.collects.get(t, 0) for t in set(deltas) | set(plan.collects)}
        realised = (value_usd(booked, plan.prices) + value_usd(plan.deferred, plan.prices)
                    - fee_paid * native_price // 10**18)
        details = {**details, "tx_hashes": hashes, "fee_paid_wei": sum(rc.fee_paid for rc in receipts),
                   "token_deltas": {t: str(d) for t, d in deltas.items()},
                   "blocks": sorted({rc.block_number for rc in receipts})}
        return outcome(Status.CONFIRMED, None, tx_hash=last.tx_hash, block=last.block_number,
                       realised_profit=realised, gas_used=gas_used, details=details)




@dataclass(frozen=True)
class Refused:
    """Simulation refused ``plan`` (not recorded yet: the adapter may have a next plan)."""
    plan: Plan
    reason: str


@dataclass
class InFlight:
    """A plan whose transactions are sent and whose receipts are awaited."""
    ranked: Ranked
    plan: Plan  # the ranked plan, or its re-plan
    predicted: int
    details: dict[str, Any]
    hashes: list[str] = field(default_factory=list)  # the plan's own transactions, in order
    approvals: list[str] = field(default_factory=list)
    send_error: str | None = None
