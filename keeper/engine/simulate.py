"""Simulate: run the exact transactions (approvals + liquidation) from the keeper's address on the
node before anything is sent. eth_simulateV1 runs them in sequence in one block against current
state, so a missing approval does not hide the liquidation's own result, after the keeper's own
transactions that are sent but not mined yet (an earlier plan of the same block: its price update
or approval then costs the later plan nothing, as on chain). Nodes without eth_simulateV1 fall back
to eth_estimateGas of one transaction: a plan of one transaction, once its approvals are mined (the
executor then sends them first); a plan of several (Comet's absorb + buys, Perennial's commit +
close) cannot be run on such a node. Unmined transactions are not seen by the fallback."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from keeper.chain.client import Chain, Log, hexint
from keeper.chain.sender import TxRequest
from keeper.errors import RpcError, decode_revert


@dataclass
class Simulation:
    ok: bool
    gas_used: list[int] = field(default_factory=list)
    reason: str | None = None
    logs: list[Log] = field(default_factory=list)  # of the transactions simulated (not of ``after``)
    estimated: bool = False  # the node has no eth_simulateV1: eth_estimateGas of one transaction instead


def _calls(sender: str, txs: list[TxRequest]) -> list[dict]:
    return [{"from": sender, "to": t.to, "data": "0x" + t.data.hex(), "value": hex(t.value)} for t in txs]


async def simulate(chain: Chain, sender: str, txs: list[TxRequest],
                   after: Sequence[TxRequest] = ()) -> Simulation:
    """Run ``txs`` in sequence; ``after``: transactions already sent and not mined yet, run first so
    that ``txs`` meet the state they will meet (their results are not reported)."""
    if chain.capabilities.simulate_v1 is False:  # the endpoint's probe (keeper/chain/capabilities.py)
        return await _fallback(chain, sender, txs)
    try:
        res = await chain.rpc.request("eth_simulateV1", [
            {"blockStateCalls": [{"calls": _calls(sender, [*after, *txs])}], "validation": False}, "latest"])
    except RpcError as e:
        if e.code in (-32601, -32600) or "not supported" in str(e).lower() or "method" in str(e).lower():
            return await _fallback(chain, sender, txs)
        return Simulation(False, reason=f"simulation failed: {e}")
    calls = res[0]["calls"][len(after):]
    gas: list[int] = []
    for t, c in zip(txs, calls):
        if hexint(c["status"]) != 1:
            err = c.get("error") or {}
            reason = decode_revert(c.get("returnData") or err.get("data"), err.get("message", ""))
            return Simulation(False, gas, reason=f"{t.what or 'call'} would revert: {reason}")
        gas.append(hexint(c["gasUsed"]))
    logs = [Log.from_rpc({**lg, "blockNumber": lg.get("blockNumber", "0x0"), "logIndex": lg.get("logIndex", "0x0"),
                          "transactionHash": lg.get("transactionHash", "0x")})
            for c in calls for lg in c.get("logs", [])]
    return Simulation(True, gas, logs=logs)


async def _fallback(chain: Chain, sender: str, txs: list[TxRequest]) -> Simulation:
    if len(txs) != 1:
        return Simulation(False, reason=f"node has no eth_simulateV1: {len(txs)} transactions in sequence "
                                        "cannot be estimated one by one", estimated=True)
    (call,) = _calls(sender, txs)
    try:
        gas = hexint(await chain.rpc.request("eth_estimateGas", [call, "latest"]))
    except RpcError as e:
        return Simulation(False, reason=f"{txs[0].what} would revert: {decode_revert(e.data, str(e))}",
                          estimated=True)
    return Simulation(True, [gas], estimated=True)
