"""Execute: for each ranked plan, in order: re-plan against what the wallet still holds, check the
gas price cap, add approvals, simulate, re-check profit with the simulated gas, then send (live) or
report (dry-run), wait for the receipt and record the realised profit from the receipt's token
transfers."""
from __future__ import annotations

from dataclasses import dataclass, replace

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

    async def budget(self, tokens: set[str]) -> dict[str, int]:
        toks = sorted(tokens)
        bals = await self.chain.erc20_balances([(t, self.wallet) for t in toks])
        return dict(zip(toks, bals))

    async def run(self, ranked: list[Ranked], adapters: dict[str, Adapter], budget: dict[str, int],
                  fees: Fees, native_price: int) -> list[Outcome]:
        outcomes = []
        start_budget = dict(budget)
        for i, r in enumerate(ranked):
            opp = r.opp
            if any(budget.get(s.token, 0) < start_budget.get(s.token, 0) for s in opp.spends):
                # An earlier (more profitable) plan spent from the same balance: plan again.
                opp = adapters[opp.protocol].replan(opp, budget)
            # Where the plan stood in the ranking (reports show that sends follow it).
            opp = replace(opp, details={**opp.details, "rank": i, "ranked_net_usd": r.net_usd / 1e8})
            if not opp.planned:  # the re-plan found nothing left to do it with
                outcomes.append(self._skip(opp, opp.reason or "nothing left to plan with"))
                continue
            outcomes.append(await self._one(opp, budget, fees, native_price))
        return outcomes

    def _skip(self, opp: Opportunity, reason: str, **kw) -> Outcome:
        keep = {k: opp.details[k] for k in ("accounts", "rank", "ranked_net_usd") if k in opp.details}
        if keep:  # a batch names every account it covers (Comet's absorb); the place in the ranking
            kw.setdefault("details", keep)
        return self.recorder.add(Outcome("skipped", opp.protocol, opp.account, opp.label, reason, **kw))

    async def _one(self, opp: Opportunity, budget: dict[str, int], fees: Fees, native_price: int) -> Outcome:
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
        sim = await simulate(self.chain, self.wallet, approvals + list(opp.txs))
        if not sim.ok:
            return self._skip(opp, f"simulation: {sim.reason}")
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
        receipts: list[Receipt] = []
        for i, (tx, g) in enumerate(zip(approvals + list(opp.txs), sim.gas_used)):
            is_approval = i < len(approvals)
            try:
                tx_hash = await self.sender.send(replace(tx, gas=g * lim.gas_margin_pct // 100 + 30_000), fees)
            except RpcError as e:
                return self.recorder.add(Outcome("failed", opp.protocol, opp.account, opp.label,
                                                 f"sending {tx.what} failed: {e}", predicted_profit=predicted,
                                                 details=details))
            rc = await self.sender.wait(tx_hash)
            if is_approval:
                if rc.status != 1:
                    return self.recorder.add(Outcome("failed", opp.protocol, opp.account, opp.label,
                                                     f"{tx.what} reverted", tx_hash=rc.tx_hash))
                continue
            receipts.append(rc)
            if rc.status != 1:
                break
        return self.recorder.add(self._settle(opp, receipts, predicted, native_price, budget, details))

    async def _approvals(self, opp: Opportunity) -> list[TxRequest]:
        fn = ERC20.fn("allowance")
        allowances = await self.chain.multicall_strict(
            [Call(s.token, fn.encode(self.wallet, s.spender), fn.decode) for s in opp.spends])
        return [TxRequest(s.token, ERC20.fn("approve").encode(s.spender, UINT_MAX),
                          what=f"approve {s.token[:10]} for {s.spender[:10]}")
                for s, a in zip(opp.spends, allowances) if a < s.amount]

    def _settle(self, opp: Opportunity, receipts: list[Receipt], predicted: int, native_price: int,
                budget: dict[str, int], details: dict) -> Outcome:
        logs = [lg for rc in receipts for lg in rc.logs]
        deltas = token_deltas(logs, self.wallet, set(opp.prices))
        for t, d in deltas.items():
            budget[t] = budget.get(t, 0) + d
        last = receipts[-1]
        gas_used = sum(rc.gas_used for rc in receipts)
        hashes = [rc.tx_hash for rc in receipts]
        if last.status != 1:
            return Outcome("reverted", opp.protocol, opp.account, opp.label, f"{opp.txs[len(receipts) - 1].what} "
                           "reverted on chain", tx_hash=last.tx_hash, block=last.block_number,
                           predicted_profit=predicted, gas_used=gas_used, details={**details, "tx_hashes": hashes})
        fee_paid = sum(rc.fee_paid for rc in receipts) + opp.native_spent  # gas + native value sent
        # Accrual: deferred credits are booked now; a claim counts only what differs from what it collects.
        booked = {t: deltas.get(t, 0) - opp.collects.get(t, 0) for t in set(deltas) | set(opp.collects)}
        realised = (sum(opp.prices[t].usd(d) for t, d in booked.items())
                    + sum(opp.prices[t].usd(d) for t, d in opp.deferred.items())
                    - fee_paid * native_price // 10**18)
        details = {**details, "tx_hashes": hashes, "token_deltas": {t: str(d) for t, d in deltas.items()}}
        return Outcome("confirmed", opp.protocol, opp.account, opp.label, None, tx_hash=last.tx_hash,
                       block=last.block_number, predicted_profit=predicted, realised_profit=realised,
                       gas_used=gas_used, details=details)
