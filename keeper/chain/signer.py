"""The keeper's signing key: read from an environment variable or an encrypted JSON keystore.
The key never leaves this object: it is not printed, logged, repr'd or exported."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from keeper.errors import ConfigError

_CONVENTIONAL = re.compile(r"[A-Z][A-Z0-9_]*")


def _named(var: str, field: str) -> str:
    """How an error names the variable: itself when it reads like a variable name (upper case);
    otherwise it may be a password or key put in ``field`` by mistake, and is not repeated."""
    return f"environment variable {var}" if _CONVENTIONAL.fullmatch(var) else (
        f"the environment variable {field} names (not shown: not an upper-case name, it may be a secret)")


class Signer:
    __slots__ = ("_account",)

    def __init__(self, account: LocalAccount):
        self._account = account

    @property
    def address(self) -> str:
        return self._account.address

    def sign(self, tx: dict[str, Any]) -> tuple[bytes, str]:
        signed = self._account.sign_transaction(tx)
        return bytes(signed.raw_transaction), "0x" + signed.hash.hex().removeprefix("0x")

    def __repr__(self) -> str:  # never the key
        return f"Signer({self.address})"

    __str__ = __repr__

    @classmethod
    def from_env(cls, var: str) -> Signer:
        raw = os.environ.get(var)
        if not raw:
            raise ConfigError(f"signer.private_key_env: {_named(var, 'signer.private_key_env')} is not set or empty")
        try:
            return cls(Account.from_key(raw.strip()))
        except Exception:
            # The exception text could echo the key: say only what is wrong.
            raise ConfigError(f"signer.private_key_env: {_named(var, 'signer.private_key_env')} does not hold a valid "
                              "private key") from None

    @classmethod
    def from_keystore(cls, path: Path, password_var: str) -> Signer:
        if password_var not in os.environ:
            raise ConfigError(f"signer.password_env: {_named(password_var, 'signer.password_env')} is not set")
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"signer.keystore: cannot read {path}: {e}") from None
        try:
            key = Account.decrypt(data, os.environ[password_var])
        except Exception:
            raise ConfigError(f"signer.keystore: cannot decrypt {path} with the password in "
                              f"{_named(password_var, 'signer.password_env')}") from None
        return cls(Account.from_key(key))
