"""A scripted JSON-RPC transport for node-free tests: ``Rpc(transport=FakeTransport())``.

Answers are scripted per method (``on``) or per contract function (``on_call``, which also serves
the sub-calls of a Multicall3 ``aggregate3`` eth_call); every request is recorded. An answer is
a result value, a ``Fault`` (a JSON-RPC error object), an exception instance (raised by the
transport, as a dropped connection would be), or a callable taking the params and returning one
of those. A request nothing answers fails the test with the method named.

    chain, fake = fake_chain()
    fake.on("eth_blockNumber", "0x10")
    fake.on("eth_feeHistory", fee_history([10**9, 10**9], [10**8]))
    fake.on_call(pool, "getUserAccountData(address)", lambda calldata: encode([...], [...]))
    fake.on_call(oracle, "latestAnswer()", Revert(b""))           # a failing Multicall3 sub-call
    fake.on("eth_sendRawTransaction", Fault(-32000, "nonce too low"), "0x" + "ab" * 32)
    ...
    assert fake.calls_of("eth_sendRawTransaction") == [...]; len(fake.round_trips) == 3
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak

from keeper.chain.client import Chain
from keeper.chain.multicall import MULTICALL3
from keeper.chain.rpc import Request, Rpc

_AGGREGATE3 = keccak(text="aggregate3((address,bool,bytes)[])")[:4]
_ERROR_STRING = keccak(text="Error(string)")[:4]


@dataclass(frozen=True)
class Fault:
    """A JSON-RPC error answer: ``{"error": {"code", "message", "data"}}``."""
    code: int
    message: str
    data: Any = None

    def response(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return {"jsonrpc": "2.0", "id": 1, "error": err}


def revert(data: bytes | str = b"") -> Fault:
    """The answer of an eth_call / estimate that reverted with ``data``."""
    return Fault(3, "execution reverted", data if isinstance(data, str) else "0x" + data.hex())


@dataclass(frozen=True)
class Revert:
    """An ``on_call`` answer: the function reverts with this data (a failed Multicall3 sub-call)."""
    data: bytes = b""


class NoAnswer(AssertionError):
    """The test scripted no answer for a request."""


def _sel(signature: str) -> bytes:
    return keccak(text=signature)[:4]


class FakeTransport:
    def __init__(self, *, multicall_address: str = MULTICALL3):
        self.calls: list[Request] = []  # every request, in order
        self.round_trips: list[list[Request]] = []  # what each send / send_batch carried
        self.closed = False
        self.multicall_address = multicall_address.lower()
        self._answers: dict[str, list[Any]] = {}
        self._functions: dict[tuple[str, bytes], Any] = {}

    # -- scripting ---------------------------------------------------------------------------
    def on(self, method: str, *answers: Any) -> FakeTransport:
        """Queue answers for ``method``: each request takes the next, the last one repeats.
        ``on("batch", answer)`` answers the next whole batch instead (a Fault: the node refuses it;
        a list: the raw response objects)."""
        self._answers.setdefault(method, []).extend(answers)
        return self

    def on_call(self, to: str, signature: str, answer: Any) -> FakeTransport:
        """eth_call of ``signature`` on contract ``to``: ``answer`` is the return data (bytes), a
        ``Revert``, or a callable(calldata) -> either."""
        self._functions[(to.lower(), _sel(signature))] = answer
        return self

    def calls_of(self, method: str) -> list[list[Any]]:
        """The params of every request of ``method``."""
        return [p for m, p in self.calls if m == method]

    # -- Transport -----------------------------------------------------------------------------
    async def send(self, method: str, params: list[Any]) -> Any:
        self.round_trips.append([(method, params)])
        return self._answer(method, params)

    async def send_batch(self, requests: list[Request]) -> Any:
        self.round_trips.append(list(requests))
        if self._answers.get("batch"):
            whole = self._take("batch", requests)
            self.calls.extend(requests)
            if isinstance(whole, BaseException):
                raise whole
            return whole.response() if isinstance(whole, Fault) else whole
        out = []
        for i, (method, params) in enumerate(requests):
            resp = self._answer(method, params)
            out.append({**resp, "id": i})
        return out

    async def close(self) -> None:
        self.closed = True

    # -- answering -----------------------------------------------------------------------------
    def _take(self, method: str, params: Any) -> Any:
        queue = self._answers[method]
        answer = queue.pop(0) if len(queue) > 1 or method == "batch" else queue[0]  # batch answers: once each
        return answer(params) if callable(answer) and not isinstance(answer, type) else answer

    def _answer(self, method: str, params: list[Any]) -> dict[str, Any]:
        self.calls.append((method, params))
        if method == "eth_call" and (result := self._contract_call(params)) is not None:
            answer: Any = result
        elif self._answers.get(method):
            answer = self._take(method, params)
        else:
            raise NoAnswer(f"FakeTransport: no answer scripted for {method} {str(params)[:200]}")
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, Fault):
            return answer.response()
        return {"jsonrpc": "2.0", "id": 1, "result": answer}

    def _function(self, to: str, data: bytes) -> Any:
        key = (to.lower(), data[:4])
        if key not in self._functions:
            return None
        answer = self._functions[key]
        return answer(data) if callable(answer) else answer

    def _contract_call(self, params: list[Any]) -> Any:
        """The answer of an eth_call from the on_call table (None: not scripted there)."""
        tx = params[0] if params and isinstance(params[0], dict) else {}
        if "to" not in tx:
            return None
        to, data = tx["to"].lower(), bytes.fromhex(tx.get("data", tx.get("input", "0x"))[2:])
        if to == self.multicall_address and data[:4] == _AGGREGATE3:
            (subcalls,) = decode(["(address,bool,bytes)[]"], data[4:])
            results = []
            for target, allow_failure, sub in subcalls:
                answer = self._function(target, sub)
                if answer is None:
                    raise NoAnswer(f"FakeTransport: no on_call answer for {target} selector 0x{sub[:4].hex()}")
                ok = not isinstance(answer, Revert)
                if not ok and not allow_failure:
                    return revert(_ERROR_STRING + encode(["string"], ["Multicall3: call failed"]))
                results.append((ok, answer.data if isinstance(answer, Revert) else answer))
            return "0x" + encode(["(bool,bytes)[]"], [results]).hex()
        answer = self._function(to, data)
        if answer is None:
            return None
        return revert(answer.data) if isinstance(answer, Revert) else "0x" + answer.hex()


def fake_chain(transport: FakeTransport | None = None, **chain_kwargs: Any) -> tuple[Chain, FakeTransport]:
    """A Chain over a FakeTransport (no retry waits)."""
    fake = transport or FakeTransport()
    return Chain(Rpc(transport=fake, retry_wait=0), **chain_kwargs), fake


def fee_history(base_fees: list[int], rewards: list[int | None]) -> dict[str, Any]:
    """An eth_feeHistory answer: baseFeePerGas (the last entry is the pending block's) and one
    reward percentile per block (None: a block without transactions, an empty list)."""
    return {"oldestBlock": "0x1", "baseFeePerGas": [hex(b) for b in base_fees],
            "gasUsedRatio": [0.5] * len(rewards), "reward": [[hex(r)] if r is not None else [] for r in rewards]}


def hexdata(*words: int) -> str:
    """ABI words (uint256) as an eth_call result."""
    return "0x" + encode(["uint256"] * len(words), list(words)).hex()

