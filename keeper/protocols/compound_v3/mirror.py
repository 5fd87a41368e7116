"""The Compound III incremental mirror: each account's principal (userBasic) and collateral balances
kept locally, the market's indexes read once per block, borrowBalanceOf and isLiquidatable computed
with Comet's own integer maths (compound-finance/comet Comet.sol: accruedInterestIndices,
presentValueBorrow, isLiquidatable's liquidity loop at the stored index).

Per block: ONE JSON-RPC batch (Comet's logs since the last block mirrored, totalsBasic and
getUtilization at the block, the block header); getBorrowRate(utilization) again only when the
stored utilization changed. An account named by an indexed topic of any Comet log (Supply,
Withdraw, Transfer, SupplyCollateral, WithdrawCollateral, TransferCollateral, AbsorbDebt,
AbsorbCollateral...) is dirty and re-read at the block. Prices come with the market reads the
adapter makes every block; every account's check is then recomputed locally (integers, no reads).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from keeper.chain.client import Chain, block_tag, hexint
from keeper.chain.multicall import Call, CallFailed, decode_aggregate3, encode_aggregate3, selector
from keeper.protocols.compound_v3 import maths as cm

BASE_INDEX_SCALE = 10**15
_USER_BASIC = selector("userBasic(address)")
_COLLATERAL = selector("collateralBalanceOf(address,address)")
_TOTALS = selector("totalsBasic()")
_UTILIZATION = selector("getUtilization()")
_BORROW_RATE = selector("getBorrowRate(uint256)")


def _words(b: bytes) -> list[int]:
    return [int.from_bytes(b[i:i + 32], "big") for i in range(0, len(b), 32)]


def _signed(w: int) -> int:
    return w - (1 << 256) if w >> 255 else w


def _arg(addr: str) -> bytes:
    return bytes(12) + bytes.fromhex(addr[2:])


@dataclass
class CometAccount:
    principal: int = 0  # userBasic.principal (negative: a borrow)
    collateral: dict[str, int] = field(default_factory=dict)  # asset -> userCollateral balance


@dataclass
class CometMirror:
    comet: str
    accounts: dict[str, CometAccount] = field(default_factory=dict)
    by_lower: dict[str, str] = field(default_factory=dict)
    borrow_index: int = BASE_INDEX_SCALE  # stored baseBorrowIndex
    last_accrual: int = 0
    utilization: int = -1
    borrow_rate: int = 0
    timestamp: int = 0
    block: int = -1
    reread: int = 0

    def accrued_borrow_index(self) -> int:
        """Comet.accruedInterestIndices: index + mulFactor(index, borrowRate x elapsed)."""
        elapsed = self.timestamp - self.last_accrual
        if elapsed <= 0:
            return self.borrow_index
        return self.borrow_index + cm.mul_factor(self.borrow_index, self.borrow_rate * elapsed)

    async def advance(self, chain: Chain, block: int, known: Iterable[str], assets: list[str]) -> None:
        tag = block_tag(block)
        calls = [Call(self.comet, _TOTALS), Call(self.comet, _UTILIZATION)]
        reqs: list[tuple[str, list]] = [
            ("eth_call", [{"to": chain.multicall_address, "data": "0x" + encode_aggregate3(calls).hex()}, tag]),
            ("eth_getBlockByNumber", [tag, False]),
        ]
        first = self.block < 0
        if not first and self.block < block <= self.block + chain.log_chunk_blocks:
            reqs.append(("eth_getLogs", [{"address": self.comet, "fromBlock": hex(self.block + 1), "toBlock": tag}]))
        answers = await chain.batch(reqs)
        totals, util = decode_aggregate3(calls, bytes.fromhex(answers[0][2:]))
        if isinstance(totals, CallFailed) or isinstance(util, CallFailed):
            raise RuntimeError(f"Comet totalsBasic/getUtilization failed at block {block}")
        t = _words(totals)
        self.borrow_index, self.last_accrual = t[1], t[6]
        self.timestamp = hexint(answers[1]["timestamp"])
        u = _words(util)[0]
        if u != self.utilization:
            [rate] = await chain.multicall_strict([Call(self.comet, _BORROW_RATE + u.to_bytes(32, "big"))], block)
            self.utilization, self.borrow_rate = u, _words(rate)[0]
        dirty: set[str] = set()
        if len(reqs) == 3:
            for raw in answers[2]:
                for topic in raw["topics"][1:]:
                    topic = topic.lower()
                    if topic.startswith("0x000000000000000000000000") and (a := self.by_lower.get(topic[26:])):
                        dirty.add(a)
        elif not first and block > self.block:
            dirty = set(known)  # too long a gap to read its logs in one request
        dirty |= {a for a in known if a not in self.accounts}
        if dirty:
            await self.read(chain, sorted(dirty), assets, block)
        self.block = block

    async def read(self, chain: Chain, accounts: list[str], assets: list[str], block: int) -> None:
        calls: list[Call] = []
        for a in accounts:
            arg = _arg(a)
            calls.append(Call(self.comet, _USER_BASIC + arg))
            calls += [Call(self.comet, _COLLATERAL + arg + _arg(asset)) for asset in assets]
        res = await chain.multicall(calls, block)
        width = 1 + len(assets)
        for i, a in enumerate(accounts):
            row = res[i * width:(i + 1) * width]
            if any(isinstance(x, CallFailed) for x in row):
                raise RuntimeError(f"Comet account reads failed for {a} at block {block}")
            acc = CometAccount(principal=_signed(_words(row[0])[0]))
            acc.collateral = {asset: _words(b)[0] for asset, b in zip(assets, row[1:]) if _words(b)[0]}
            self.accounts[a] = acc
            self.by_lower[a[2:].lower()] = a
        self.reread += len(accounts)

    def debt(self, account: str) -> int:
        """Comet.borrowBalanceOf: presentValueBorrow at the accrued index."""
        p = self.accounts[account].principal
        return -p * self.accrued_borrow_index() // BASE_INDEX_SCALE if p < 0 else 0

    def stored_debt(self, account: str) -> int:
        """The debt isLiquidatable values: presentValueBorrow at the stored index."""
        p = self.accounts[account].principal
        return -p * self.borrow_index // BASE_INDEX_SCALE if p < 0 else 0
