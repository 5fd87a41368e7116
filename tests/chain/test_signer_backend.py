"""Signing is on the hot path (every liquidation is signed after its block is seen): eth-keys must
use libsecp256k1 (coincurve, a runtime dependency), not its pure-Python backend, about 12 times
slower here. Node-free."""
from __future__ import annotations

from eth_account import Account
from eth_keys import KeyAPI
from eth_keys.backends.coincurve import CoinCurveECCBackend

from keeper.chain.signer import Signer


def test_signatures_come_from_libsecp256k1_and_recover_to_the_signer():
    assert isinstance(KeyAPI().backend, CoinCurveECCBackend)
    acct = Account.from_key("0x" + "4b" * 32)
    raw, _ = Signer(acct).sign({"type": 2, "chainId": 1, "nonce": 7, "to": "0x" + "11" * 20, "value": 0,
                                "data": b"\x01" * 68, "gas": 300_000, "maxFeePerGas": 10**10,
                                "maxPriorityFeePerGas": 10**9})
    assert Account.recover_transaction(raw) == acct.address
