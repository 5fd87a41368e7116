"""The keeper's LiquidationExecutor contract (LiquidationExecutor.sol beside this file): the compiled
artifact shipped with the package (no compiler needed to deploy it), typed encoders of the owner's
entry points, and deploy / withdraw.

A flow is one owner transaction: flash liquidity (Morpho Blue, Aave V3 or a Uniswap V3 pool) or
Morpho's liquidation callback pays the liquidation, the seized collateral is swapped back through
SwapRouter.exactInput, the lender is repaid and every token of the flow goes to the owner. The
contract reverts ``InsufficientProfit`` unless its balance of ``Profit.token`` grew by at least
``Profit.min``; each entry point returns that profit, so an eth_call of the calldata is an exact
preview.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address

from keeper.abi import Abi
from keeper.chain.client import Chain, hexint
from keeper.chain.fees import Fees, current_fees
from keeper.chain.sender import Receipt, Sender, TxRequest
from keeper.chain.signer import Signer
from keeper.errors import KeeperError

ARTIFACT = Path(__file__).with_name("LiquidationExecutor.json")
UINT256_MAX = 2**256 - 1
UNISWAP_FEE_TIERS = (100, 500, 3000, 10000)


class ExecutorError(KeeperError):
    """A deploy or withdraw that cannot be done (no code, wrong owner, revert)."""


@lru_cache(maxsize=1)
def artifact() -> dict[str, Any]:
    """{contractName, source, source_sha256, compiler, settings, abi, bytecode} (scripts/build_executor.py)."""
    data: dict[str, Any] = json.loads(ARTIFACT.read_text())
    return data


@lru_cache(maxsize=1)
def executor_abi() -> Abi:
    return Abi(artifact()["abi"])


def error_signatures() -> list[str]:
    """The contract's custom errors, "Name(type,...)", for revert decoding."""
    errors = [e for e in artifact()["abi"] if e["type"] == "error"]
    return [f"{e['name']}({','.join(i['type'] for i in e['inputs'])})" for e in errors]


# ---------------------------------------------------------------------------------------- parameters

class FlashSource(IntEnum):
    """LiquidationExecutor.FlashSource: Morpho Blue flashLoan (no fee), Aave V3 flashLoanSimple
    (FLASHLOAN_PREMIUM_TOTAL bps), Uniswap V3 pool flash (the pool's fee tier; never a pool the
    swap path uses: it is locked during the flash)."""
    MORPHO_BLUE = 0
    AAVE_V3 = 1
    UNISWAP_V3 = 2


@dataclass(frozen=True)
class Flash:
    source: FlashSource
    lender: str  # Morpho, the Aave Pool, or the Uniswap V3 pool holding the token

    def abi(self) -> tuple[int, str]:
        return (int(self.source), self.lender)


def encode_path(tokens: Sequence[str], fees: Sequence[int]) -> bytes:
    """A Uniswap V3 path (v3-periphery libraries/Path.sol): token | fee (3 bytes) | token | ..."""
    if len(tokens) < 2 or len(fees) != len(tokens) - 1:
        raise ValueError(f"a path needs n >= 2 tokens and n - 1 fees, got {len(tokens)} tokens and {len(fees)} fees")
    out = bytes.fromhex(to_checksum_address(tokens[0])[2:])
    for fee, token in zip(fees, tokens[1:]):
        if fee not in UNISWAP_FEE_TIERS:
            raise ValueError(f"fee {fee} is not a Uniswap V3 fee tier {UNISWAP_FEE_TIERS}")
        out += fee.to_bytes(3, "big") + bytes.fromhex(to_checksum_address(token)[2:])
    return out


@dataclass(frozen=True)
class Swap:
    """SwapRouter.exactInput of ``amount_in`` of the path's first token (0: the executor's whole
    balance of it, i.e. everything seized), paying at least ``amount_out_minimum``."""
    router: str
    path: bytes
    amount_in: int
    amount_out_minimum: int

    def abi(self) -> tuple[str, bytes, int, int]:
        return (self.router, self.path, self.amount_in, self.amount_out_minimum)


@dataclass(frozen=True)
class Profit:
    """The flow reverts unless the executor's balance of ``token`` grows by at least ``min``
    (then swept to the owner)."""
    token: str
    min: int

    def abi(self) -> tuple[str, int]:
        return (self.token, self.min)


@dataclass(frozen=True)
class AaveV3Liquidation:
    pool: str
    collateral_asset: str
    debt_asset: str
    user: str
    debt_to_cover: int  # also the flash-loan amount (what the Pool does not pull repays the loan)

    def abi(self) -> tuple:
        return (self.pool, self.collateral_asset, self.debt_asset, self.user, self.debt_to_cover)


@dataclass(frozen=True)
class MarketParams:
    """Morpho Blue's MarketParams."""
    loan_token: str
    collateral_token: str
    oracle: str
    irm: str
    lltv: int

    def abi(self) -> tuple:
        return (self.loan_token, self.collateral_token, self.oracle, self.irm, self.lltv)


@dataclass(frozen=True)
class MorphoBlueLiquidation:
    morpho: str
    market: MarketParams
    borrower: str
    seized_assets: int  # exactly one of seized_assets, repaid_shares is non-zero
    repaid_shares: int

    def abi(self) -> tuple:
        return (self.morpho, self.market.abi(), self.borrower, self.seized_assets, self.repaid_shares)


@dataclass(frozen=True)
class CompoundV3Liquidation:
    comet: str
    base_token: str
    absorb: tuple[str, ...]  # accounts to absorb first (may be empty)
    asset: str  # collateral bought
    base_amount: int  # base paid, also the flash-loan amount
    min_amount: int  # minimum collateral bought

    def abi(self) -> tuple:
        return (self.comet, self.base_token, list(self.absorb), self.asset, self.base_amount, self.min_amount)


@dataclass(frozen=True)
class PriceUpdate:
    """Gearbox's PriceUpdate: an on-demand update for an updatable price feed."""
    price_feed: str
    data: bytes

    def abi(self) -> tuple[str, bytes]:
        return (self.price_feed, self.data)


@dataclass(frozen=True)
class GearboxPartialLiquidation:
    facade: str
    credit_manager: str  # pulls the underlying (approved by the executor)
    underlying: str
    credit_account: str
    token: str  # collateral seized
    repaid_amount: int  # also the flash-loan amount
    min_seized_amount: int
    price_updates: tuple[PriceUpdate, ...] = ()

    def abi(self) -> tuple:
        return (self.facade, self.credit_manager, self.underlying, self.credit_account, self.token,
                self.repaid_amount, self.min_seized_amount, [u.abi() for u in self.price_updates])


@dataclass(frozen=True)
class GearboxFullLiquidation:
    """liquidateCreditAccount with the multicall [onDemandPriceUpdates(price_updates) when any,
    addCollateral(underlying, add_amount), withdrawCollateral(c, max, executor) per collateral]."""
    facade: str
    credit_manager: str
    underlying: str
    credit_account: str
    add_amount: int  # underlying added, also the flash-loan amount
    collaterals: tuple[str, ...]
    price_updates: tuple[PriceUpdate, ...] = ()
    loss_policy_data: bytes = b""

    def abi(self) -> tuple:
        return (self.facade, self.credit_manager, self.underlying, self.credit_account, self.add_amount,
                list(self.collaterals), [u.abi() for u in self.price_updates], self.loss_policy_data)


# ---------------------------------------------------------------------------------------- calldata

def _call(fn: str, *args: Any) -> bytes:
    return executor_abi().fn(fn).encode(*args)


def liquidate_aave_v3(liq: AaveV3Liquidation, flash: Flash, swap: Swap, profit: Profit) -> bytes:
    return _call("liquidateAaveV3", liq.abi(), flash.abi(), swap.abi(), profit.abi())


def liquidate_morpho_blue(liq: MorphoBlueLiquidation, swap: Swap, profit: Profit) -> bytes:
    return _call("liquidateMorphoBlue", liq.abi(), swap.abi(), profit.abi())


def liquidate_compound_v3(liq: CompoundV3Liquidation, flash: Flash, swap: Swap, profit: Profit) -> bytes:
    return _call("liquidateCompoundV3", liq.abi(), flash.abi(), swap.abi(), profit.abi())


def liquidate_gearbox_partial(liq: GearboxPartialLiquidation, flash: Flash, swap: Swap, profit: Profit) -> bytes:
    return _call("liquidateGearboxPartial", liq.abi(), flash.abi(), swap.abi(), profit.abi())


def liquidate_gearbox_full(liq: GearboxFullLiquidation, flash: Flash, swaps: Sequence[Swap], profit: Profit) -> bytes:
    return _call("liquidateGearboxFull", liq.abi(), flash.abi(), [s.abi() for s in swaps], profit.abi())


def withdraw_calldata(token: str, to: str, amount: int = UINT256_MAX) -> bytes:
    """withdraw(token, to, amount); type(uint256).max sends the whole balance."""
    return _call("withdraw", token, to, amount)


def decode_profit(returned: bytes) -> int:
    """What an entry point returns (eth_call): the profit in the profit token."""
    (profit,) = decode(["uint256"], returned)
    return int(profit)


# ---------------------------------------------------------------------------------------- deploy / withdraw

@dataclass(frozen=True)
class Deployed:
    address: str
    owner: str
    receipt: Receipt


def creation_code(owner: str) -> bytes:
    """The artifact's creation code with the constructor argument (the owner)."""
    return bytes.fromhex(artifact()["bytecode"].removeprefix("0x")) + encode(["address"], [owner])


async def _send(chain: Chain, signer: Signer, to: str, data: bytes, what: str, fees: Fees | None) -> Receipt:
    tx: dict[str, Any] = {"from": signer.address, "data": "0x" + data.hex()}
    if to:
        tx["to"] = to
    try:
        gas = hexint(await chain.rpc.request("eth_estimateGas", [tx]))
    except KeeperError as e:
        raise ExecutorError(f"{what} would revert: {e}") from None
    sender = Sender(chain, signer, await chain.chain_id())
    fees = fees or await current_fees(chain, max_priority_fee=2 * 10**9)
    receipt = await sender.wait(await sender.send(TxRequest(to=to, data=data, gas=gas * 12 // 10 + 20_000, what=what),
                                                  fees))
    if receipt.status != 1:
        raise ExecutorError(f"{what} reverted on chain (tx {receipt.tx_hash})")
    return receipt


async def deploy(chain: Chain, signer: Signer, *, owner: str | None = None, fees: Fees | None = None) -> Deployed:
    """Deploy a LiquidationExecutor from ``signer``, owned by ``owner`` (default: the signer)."""
    owner = to_checksum_address(owner or signer.address)
    receipt = await _send(chain, signer, "", creation_code(owner), "deploy LiquidationExecutor", fees)
    raw = await chain.rpc.request("eth_getTransactionReceipt", [receipt.tx_hash])
    return Deployed(to_checksum_address(raw["contractAddress"]), owner, receipt)


async def owner_of(chain: Chain, executor: str) -> str:
    """owner() of the executor at ``executor``; ExecutorError when there is no contract there."""
    if not await chain.get_code(executor):
        raise ExecutorError(f"no contract at executor address {executor}")
    fn = executor_abi().fn("owner")
    try:
        owner: str = fn.decode(await chain.eth_call(executor, fn.encode()))
    except Exception as e:
        raise ExecutorError(f"{executor} does not answer owner(): is it a LiquidationExecutor? ({e})") from None
    return owner


async def withdraw(chain: Chain, signer: Signer, executor: str, token: str, *, to: str | None = None,
                   amount: int = UINT256_MAX, fees: Fees | None = None) -> Receipt:
    """Send ``amount`` (default: all) of ``token`` held by the executor to ``to`` (default: the
    signer). Only the executor's owner may: checked first, with a clear error."""
    owner = await owner_of(chain, executor)
    if owner.lower() != signer.address.lower():
        raise ExecutorError(f"executor {executor} is owned by {owner}, not by the signer {signer.address}")
    return await _send(chain, signer, to_checksum_address(executor),
                       withdraw_calldata(to_checksum_address(token), to_checksum_address(to or signer.address), amount),
                       f"withdraw {token} from the executor", fees)


def decode_error(data: bytes) -> tuple[str, tuple[Any, ...]] | None:
    """(name, arguments) of one of the executor's custom errors in revert data, else None."""
    for sig in error_signatures():
        if data[:4] == keccak(text=sig)[:4]:
            types = [t for t in sig[sig.index("(") + 1:-1].split(",") if t]
            return sig[:sig.index("(")], tuple(decode(types, data[4:]))
    return None
