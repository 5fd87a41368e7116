"""Simulate: run the exact transactions (approvals + liquidation) from the keeper's address on the
node before anything is sent. eth_simulateV1 runs them in sequence in one block against current
state, so a missing approval does not hide the liquidation's own result, after the keeper's own
transactions that are sent but not mined yet (an earlier plan: its price update or approval then
costs the later plan nothing, as on chain).

Nodes without eth_simulateV1 (many hosted endpoints) are found out once, logged once, and then
checked with eth_call (the revert reason) and eth_estimateGas (the gas) of one transaction: a plan of
one transaction, once its approvals are mined (the executor then sends them first); a plan of
several (Comet's absorb + buys, Perennial's commit + close) cannot be run on such a node. Unmined
transactions are not seen by the fallback."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from keeper.chain.client import AtHash, Chain, Log, block_tag, hexint
from keeper.chain.sender import TxRequest
from keeper.errors import RpcError, TransientRpcError, decode_revert

log = structlog.get_logger()
APPROVE_SELECTOR = bytes.fromhex("095ea7b3")  # approve(address,uint256)


@dataclass
class Simulation:
    ok: bool
    gas_used: list[int] = field(default_factory=list)
    reason: str | None = None
    raw_logs: list[dict[str, Any]] = field(default_factory=list)  # as the node answered them
    estimated: bool = False  # the node has no eth_simulateV1: eth_call + eth_estimateGas of one transaction
    unknown: bool = False  # the node did not answer (not a revert): nothing can be said of the transactions

    @property
    def logs(self) -> list[Log]:
        """The logs of the transactions simulated (not of ``after``), parsed when asked (few plans
        need them: checksumming every address of every plan's logs costs more than the request)."""
        return [Log.from_rpc({**lg, "blockNumber": lg.get("blockNumber", "0x0"), "logIndex": lg.get("logIndex", "0x0"),
                              "transactionHash": lg.get("transactionHash", "0x")}) for lg in self.raw_logs]


def _calls(sender: str, txs: Sequence[TxRequest]) -> list[dict[str, Any]]:
    return [{"from": sender, "to": t.to, "data": "0x" + t.data.hex(), "value": hex(t.value)} for t in txs]


def _missing(e: RpcError) -> bool:
    """The node's answer to a method it does not have (EIP-1474 -32601, or a wording of it)."""
    m = str(e).lower()
    return e.code in (-32601, -32600) or "not supported" in m or "method" in m


def _verdict(txs: Sequence[TxRequest], calls: Sequence[dict[str, Any]]) -> tuple[Simulation, bool]:
    """One plan's Simulation from its calls' results, and whether, refused, it left state behind
    (a call other than an ERC20 approval succeeded before the one that reverts)."""
    if len(calls) < len(txs):
        return Simulation(False, reason=f"simulation answered {len(calls)} of {len(txs)} calls", unknown=True), False
    gas: list[int] = []
    for i, (t, c) in enumerate(zip(txs, calls)):
        if hexint(c["status"]) != 1:
            err = c.get("error") or {}
            reason = decode_revert(c.get("returnData") or err.get("data"), err.get("message", ""))
            left = any(x.data[:4] != APPROVE_SELECTOR for x in txs[:i])
            return Simulation(False, gas, reason=f"{t.what or 'call'} would revert: {reason}"), left
        gas.append(hexint(c["gasUsed"]))
    return Simulation(True, gas, raw_logs=[lg for c in calls for lg in c.get("logs", [])]), False


class Simulator:
    """Runs simulations on one node and remembers whether it has eth_simulateV1."""

    def __init__(self, chain: Chain):
        self.chain = chain
        self._learned: bool | None = None  # what this simulator's own requests found
        self._warned = False

    @property
    def has_simulate_v1(self) -> bool | None:
        """The endpoint in use's probed capability (keeper/chain/capabilities.py; after a failover
        the next endpoint's), else what the simulator's own requests found; None: not known yet."""
        probed = self.chain.capabilities.simulate_v1
        return probed if probed is not None else self._learned

    @has_simulate_v1.setter
    def has_simulate_v1(self, value: bool | None) -> None:
        self._learned = value

    async def probe(self, sender: str) -> bool:
        """Whether the node has eth_simulateV1 (asked once, with a zero-value self-call); a node that
        does not answer at all is asked again by the next simulation."""
        if self.has_simulate_v1 is None:
            try:
                await self.chain.rpc.request("eth_simulateV1", [
                    {"blockStateCalls": [{"calls": _calls(sender, [TxRequest(sender, b"")])}], "validation": False},
                    "latest"])
                self.has_simulate_v1 = True
            except TransientRpcError:
                return False
            except RpcError as e:
                if not _missing(e):
                    return False
                self.has_simulate_v1 = False
        if self.has_simulate_v1 is False:
            self._missing_said("eth_call + eth_estimateGas of single transactions; approvals at start-up")
        return bool(self.has_simulate_v1)

    def _missing_said(self, fallback: str) -> None:
        """Log, once, that the node has no eth_simulateV1 and what is done instead."""
        if not self._warned:
            self._warned = True
            log.warning("simulate.no_eth_simulateV1", endpoint_probe=self.chain.capabilities.simulate_v1 is False,
                        fallback=fallback)

    async def run(self, sender: str, txs: Sequence[TxRequest], after: Sequence[TxRequest] = (),
                  block: int | str | AtHash = "latest") -> Simulation:
        """Run ``txs`` in sequence on the state after ``block``; ``after``: transactions already sent
        and not mined yet, run first so that ``txs`` meet the state they will meet (their results
        are not reported)."""
        tag = block_tag(block)
        if self.has_simulate_v1 is False:
            self._missing_said("eth_call + eth_estimateGas of single transactions")
            return await self._fallback(sender, txs, tag)
        try:
            res = await self.chain.rpc.request("eth_simulateV1", [
                {"blockStateCalls": [{"calls": _calls(sender, [*after, *txs])}], "validation": False}, tag])
        except RpcError as e:
            if _missing(e):
                self.has_simulate_v1 = False
                self._missing_said("eth_call + eth_estimateGas of single transactions; approvals go out alone "
                                   "before the plan")
                return await self._fallback(sender, txs, tag)
            return Simulation(False, reason=f"simulation failed: {e}", unknown=True)
        self.has_simulate_v1 = True
        return _verdict(txs, res[0]["calls"][len(after):])[0]

    async def run_many(self, sender: str, plans: Sequence[Sequence[TxRequest]], after: Sequence[TxRequest] = (),
                       block: int | str | AtHash = "latest") -> list[Simulation] | None:
        """Every plan's transactions in rank order, in one block (consecutive nonces: they are mined
        together), after ``after``, in ONE eth_simulateV1 request; each plan's own Simulation. A
        plan's transactions meet the state the plans before it leave, as they would on chain once
        those are sent. A refused plan (one of its transactions would revert) is not sent: its
        calls must leave no state for the plans after it. Its reverted call leaves none, and ERC20
        approvals ahead of it do not matter (every plan carries the approvals it needs itself); any
        other call of it that succeeded before the revert would, so the plans after it are
        simulated again without it (one more request). None: the node has no eth_simulateV1 (or
        it is not known yet): each plan is simulated on its own (``run``)."""
        if self.has_simulate_v1 is not True:
            return None
        tag = block_tag(block)
        out: list[Simulation] = []
        todo = list(plans)
        first = list(after)  # run first: ``after``, then the plans found good so far
        while todo:
            try:
                res = await self.chain.rpc.request("eth_simulateV1", [
                    {"blockStateCalls": [{"calls": _calls(sender, [*first, *(t for p in todo for t in p)])}],
                     "validation": False}, tag])
            except RpcError as e:
                if _missing(e):
                    self.has_simulate_v1 = False
                    return None
                out += [Simulation(False, reason=f"simulation failed: {e}", unknown=True) for _ in todo]
                return out
            calls = res[0]["calls"][len(first):]
            at = 0
            tainted = None
            for i, txs in enumerate(todo):
                sim, left_state = _verdict(txs, calls[at:at + len(txs)])
                at += len(txs)
                out.append(sim)
                if sim.ok:
                    first += txs
                if left_state:
                    tainted = i
                    break
            todo = [] if tainted is None else todo[tainted + 1:]
        return out

    async def _fallback(self, sender: str, txs: Sequence[TxRequest], tag: Any = "latest") -> Simulation:
        if len(txs) != 1:
            return Simulation(False, reason=f"node has no eth_simulateV1: {len(txs)} transactions in sequence "
                                            "cannot be checked one by one", estimated=True)
        (call,) = _calls(sender, txs)
        what = txs[0].what or "call"
        try:
            await self.chain.rpc.request("eth_call", [call, tag])
            gas = hexint(await self.chain.rpc.request("eth_estimateGas", [call, tag]))
        except TransientRpcError as e:
            return Simulation(False, reason=f"simulation failed: {e}", estimated=True, unknown=True)
        except RpcError as e:
            return Simulation(False, reason=f"{what} would revert: {decode_revert(e.data, str(e))}", estimated=True)
        return Simulation(True, [gas], estimated=True)


async def simulate(chain: Chain, sender: str, txs: list[TxRequest],
                   after: Sequence[TxRequest] = ()) -> Simulation:
    """One simulation on ``chain`` (a Simulator that remembers nothing)."""
    return await Simulator(chain).run(sender, txs, after)
