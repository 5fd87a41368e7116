"""Execute: for each ranked plan, in order: re-plan against what the wallet still holds, check the
gas price cap, add approvals, simulate, re-check profit with the simulated gas, then send (live) or
report (dry-run). Every plan of a block goes out before any receipt is awaited (consecutive nonces),
so they land together; then each is recorded with the realised profit from its receipts' token
transfers."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

import structlog

from keeper.abi import load
from keeper.chain.client import ERC20_TRANSFER_TOPIC, Chain, Log
from keeper.chain.fees import GWEI, Fees
from keeper.chain.multicall import Call
from keeper.chain.sender import Receipt, Sender, TxRequest
from keeper.engine.rank import Ranked, gas_cost_usd
from keeper.engine.record import Outcome, Recorder
from keeper.engine.simulate import simulate
from keeper.errors import RpcError
from keeper.protocols.base import Adapter, Opportunity

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

    async def budget(self, tokens: set[str]) -> dict[str, int]:
        toks = sorted(tokens)
        bals = await self.chain.erc20_balances([(t, self.wallet) for t in toks])
        return dict(zip(toks, bals))

    async def run(self, ranked: list[Ranked], adapters: dict[str, Adapter], budget: dict[str, int],
                  fees: Fees, native_price: int) -> list[Outcome]:
        """Simulate and send every plan in rank order without waiting for receipts (consecutive
        nonces: a block's worth of liquidations lands in the next block, not one per block), then
        wait for all the receipts and record each plan in rank order."""
        results: list[Outcome | InFlight] = []
        start_budget = dict(budget)
        self._approving = set()
        self._sent = []
        for i, r in enumerate(ranked):
            opp = r.opp
            if any(budget.get(s.token, 0) < start_budget.get(s.token, 0) for s in opp.spends):
                # An earlier (more profitable) plan spent from the same balance: plan again.
                opp = adapters[opp.protocol].replan(opp, budget)
            # Where the plan stood in the ranking (reports show that sends follow it).
            opp = replace(opp, details={**opp.details, "rank": i, "ranked_net_usd": r.net_usd / 1e8})
            if not opp.planned:  # the re-plan found nothing left to do it with
                results.append(self._skip(opp, opp.reason or "nothing left to plan with"))
                continue
            res = await self._one(opp, budget, fees, native_price)
            if isinstance(res, Refused):
                res = await self._next_plans(res, adapters[opp.protocol], budget, fees, native_price)
            if isinstance(res, InFlight):
                for sp in res.opp.spends:  # reserved until the receipts are in: later plans get the rest
                    budget[sp.token] = budget.get(sp.token, 0) - sp.amount
            results.append(res)
        flying = [x for x in results if isinstance(x, InFlight)]
        receipts = await asyncio.gather(*(self._receipts(x) for x in flying))
        done = dict(zip(map(id, flying), receipts))
        return [self.recorder.add(self._settle(x, done[id(x)], native_price)) if isinstance(x, InFlight) else x
                for x in results]

    def _skip(self, opp: Opportunity, reason: str, **kw) -> Outcome:
        keep = {k: opp.details[k] for k in ("accounts", "rank", "ranked_net_usd") if k in opp.details}
        if keep:  # a batch names every account it covers (Comet's absorb); the place in the ranking
            kw.setdefault("details", keep)
        return self.recorder.add(Outcome("skipped", opp.protocol, opp.account, opp.label, reason, **kw))

    async def _next_plans(self, refused: "Refused", adapter: Adapter, budget: dict[str, int], fees: Fees,
                          native_price: int) -> "Outcome | InFlight":
        """Simulation refused a plan: record the refusal (once: the adapter remembers it and does
        not offer the same plan again while the account is unchanged), then try the adapter's next
        plans, up to MAX_NEXT_PLANS, until one is not refused."""
        alts = adapter.alternatives(refused.opp, refused.reason, budget)
        if not alts:
            return self._skip(refused.opp, f"simulation: {refused.reason}")
        self._skip(refused.opp, f"simulation: {refused.reason}; next plan: {alts[0].label}")
        rank = _ranking(refused.opp)
        for _ in range(MAX_NEXT_PLANS):
            res = await self._one(replace(alts[0], details={**alts[0].details, **rank}), budget, fees, native_price)
            if not isinstance(res, Refused):
                return res
            refused = res
            alts = adapter.alternatives(refused.opp, refused.reason, budget)
            if not alts:
                break
        return self._skip(refused.opp, f"simulation: {refused.reason} (a next plan)")

    async def _one(self, opp: Opportunity, budget: dict[str, int], fees: Fees,
                   native_price: int) -> "Outcome | InFlight | Refused":
        lim = self.limits
        if fees.expected_price > lim.max_gas_price:
            return self._skip(opp, f"gas price {fees.expected_price / GWEI:.2f} gwei above "
                                   f"max_gas_price_gwei {lim.max_gas_price / GWEI:.2f}")
        native_usd = gas_cost_usd(opp.native_spent, 1, native_price)  # e.g. a pull-oracle fee
        est_net = opp.gross_usd - gas_cost_usd(opp.gas_estimate, fees.expected_price, native_price) - native_usd
        if est_net < lim.min_profit and not opp.force:
            return self._skip(opp, f"expected profit {est_net / 1e8:.2f} USD below min_profit_usd "
                                   f"{lim.min_profit / 1e8:.2f}", predicted_profit=est_net)
        for s in opp.spends:
            if budget.get(s.token, 0) < s.amount:
                return self._skip(opp, f"wallet holds {budget.get(s.token, 0)} of {s.token}, needs {s.amount}")
        approvals = await self._approvals(opp)
        sim = await simulate(self.chain, self.wallet, approvals + list(opp.txs), after=await self._unmined())
        if not sim.ok:
            return Refused(opp, sim.reason or "refused")
        gas = sum(sim.gas_used[len(approvals):])
        gas_usd = gas_cost_usd(gas, fees.expected_price, native_price)
        predicted = opp.gross_usd - gas_usd - native_usd
        if opp.min_gas_multiple is not None and (opp.gross_usd + opp.collects_usd) < opp.min_gas_multiple * gas_usd:
            return self._skip(opp, f"worth {(opp.gross_usd + opp.collects_usd) / 1e8:.4f} USD, below "
                                   f"{opp.min_gas_multiple} x its gas cost {gas_usd / 1e8:.4f} USD",
                              predicted_profit=predicted)
        if predicted < lim.min_profit and not opp.force:
            return self._skip(opp, f"profit after simulated gas {predicted / 1e8:.2f} USD below "
                                   f"min_profit_usd {lim.min_profit / 1e8:.2f}", predicted_profit=predicted)
        details = {**opp.details, "gas_simulated": gas, "gas_price_wei": fees.expected_price,
                   "gross_profit_usd": opp.gross_usd / 1e8, "gas_cost_usd": gas_usd / 1e8,
                   "approvals": len(approvals)}
        if opp.native_spent:
            details["native_spent_wei"] = opp.native_spent
        if opp.deferred or opp.collects:
            details["deferred"] = {t: str(a) for t, a in opp.deferred.items()}
            details["collects"] = {t: str(a) for t, a in opp.collects.items()}
        if lim.dry_run:
            return self.recorder.add(Outcome("dry-run", opp.protocol, opp.account, opp.label,
                                             "dry-run: simulated, not sent", predicted_profit=predicted,
                                             gas_used=gas, details=details))
        flight = InFlight(opp, predicted, details)
        for i, (tx, g) in enumerate(zip(approvals + list(opp.txs), sim.gas_used)):
            is_approval = i < len(approvals)
            key = (tx.to, "0x" + tx.data[16:36].hex()) if is_approval else None
            if is_approval and key in self._approving:
                continue  # an earlier plan of this block already sent the same approval
            try:
                tx_hash = await self.sender.send(replace(tx, gas=g * lim.gas_margin_pct // 100 + 30_000), fees)
            except RpcError as e:
                if not flight.hashes and not flight.approvals:
                    return self.recorder.add(Outcome("failed", opp.protocol, opp.account, opp.label,
                                                     f"sending {tx.what} failed: {e}", predicted_profit=predicted,
                                                     details=details))
                flight.send_error = f"sending {tx.what} failed after earlier transactions went out: {e}"
                break
            if is_approval:
                self._approving.add(key)
                flight.approvals.append(tx_hash)
            else:
                flight.hashes.append(tx_hash)
            self._sent.append((tx_hash, tx))
        return flight

    async def _unmined(self) -> list[TxRequest]:
        """This block's transactions that are sent and not mined yet, in nonce order."""
        if not self._sent:
            return []
        receipts = await self.chain.rpc.batch([("eth_getTransactionReceipt", [h]) for h, _ in self._sent],
                                              raise_errors=False)
        self._sent = [(h, tx) for (h, tx), r in zip(self._sent, receipts) if not isinstance(r, dict)]
        return [tx for _, tx in self._sent]

    async def _approvals(self, opp: Opportunity) -> list[TxRequest]:
        fn = ERC20.fn("allowance")
        allowances = await self.chain.multicall_strict(
            [Call(s.token, fn.encode(self.wallet, s.spender), fn.decode) for s in opp.spends])
        return [TxRequest(s.token, ERC20.fn("approve").encode(s.spender, UINT_MAX),
                          what=f"approve {s.token[:10]} for {s.spender[:10]}")
                for s, a in zip(opp.spends, allowances) if a < s.amount]

    async def _receipts(self, flight: "InFlight") -> list[Receipt] | str:
        """The plan's receipts (approvals first), or why they could not be had."""
        try:
            return list(await asyncio.gather(*(self.sender.wait(h) for h in flight.approvals + flight.hashes)))
        except RpcError as e:
            await self.sender.nonces.resync()
            return f"waiting for receipts failed: {e}"

    def _settle(self, flight: "InFlight", got: list[Receipt] | str, native_price: int) -> Outcome:
        opp, predicted, details = flight.opp, flight.predicted, flight.details

        def fail(why: str, **kw) -> Outcome:
            kw.setdefault("details", details)
            return Outcome("failed", opp.protocol, opp.account, opp.label, why, predicted_profit=predicted, **kw)

        if isinstance(got, str):
            return fail(got)
        approvals, receipts = got[:len(flight.approvals)], got[len(flight.approvals):]
        bad = [rc for rc in approvals if rc.status != 1]
        if bad:
            return fail("approval reverted", tx_hash=bad[0].tx_hash)
        if not receipts:
            return fail(flight.send_error or "nothing was sent")
        logs = [lg for rc in receipts for lg in rc.logs]
        deltas = token_deltas(logs, self.wallet, set(opp.prices))
        gas_used = sum(rc.gas_used for rc in receipts)
        hashes = [rc.tx_hash for rc in receipts]
        reverted = [(i, rc) for i, rc in enumerate(receipts) if rc.status != 1]
        if reverted:
            i, rc = reverted[0]
            return Outcome("reverted", opp.protocol, opp.account, opp.label, f"{opp.txs[i].what} reverted on chain",
                           tx_hash=rc.tx_hash, block=rc.block_number, predicted_profit=predicted, gas_used=gas_used,
                           details={**details, "tx_hashes": hashes})
        if flight.send_error:  # part of the plan is on chain, the rest could not be sent
            return fail(flight.send_error, tx_hash=hashes[-1], details={**details, "tx_hashes": hashes})
        last = receipts[-1]
        fee_paid = sum(rc.fee_paid for rc in receipts) + opp.native_spent  # gas + native value sent
        # Accrual: deferred credits are booked now; a claim counts only what differs from what it collects.
        booked = {t: deltas.get(t, 0) - opp.collects.get(t, 0) for t in set(deltas) | set(opp.collects)}
        realised = (sum(opp.prices[t].usd(d) for t, d in booked.items())
                    + sum(opp.prices[t].usd(d) for t, d in opp.deferred.items())
                    - fee_paid * native_price // 10**18)
        details = {**details, "tx_hashes": hashes, "token_deltas": {t: str(d) for t, d in deltas.items()},
                   "blocks": sorted({rc.block_number for rc in receipts})}
        return Outcome("confirmed", opp.protocol, opp.account, opp.label, None, tx_hash=last.tx_hash,
                       block=last.block_number, predicted_profit=predicted, realised_profit=realised,
                       gas_used=gas_used, details=details)


def _ranking(opp: Opportunity) -> dict:
    return {k: opp.details[k] for k in ("rank", "ranked_net_usd") if k in opp.details}


@dataclass(frozen=True)
class Refused:
    """Simulation refused ``opp`` (not recorded yet: the adapter may have a next plan)."""
    opp: Opportunity
    reason: str


@dataclass
class InFlight:
    """A plan whose transactions are sent and whose receipts are awaited."""
    opp: Opportunity
    predicted: int
    details: dict
    hashes: list[str] = field(default_factory=list)  # the plan's own transactions, in order
    approvals: list[str] = field(default_factory=list)
    send_error: str | None = None
