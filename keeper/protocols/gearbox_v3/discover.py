"""The credit managers of a Gearbox V3 deployment, found from its AddressProviderV3 (config
``address_provider``): the provider names the ContractsRegister under the key "CONTRACTS_REGISTER"
at version 0 (NO_VERSION_CONTROL, as core-v3's ContractsRegisterTrait reads it), whose
getCreditManagers() lists every credit manager Gearbox registered, of every version; the V3 ones
(version() in [300, 400)) are kept, the others logged with the reason."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import structlog

from keeper.abi import load
from keeper.chain.client import Chain
from keeper.chain.multicall import Call, CallFailed
from keeper.errors import RpcError, StartupError, decode_revert

log = structlog.get_logger()
PROVIDER = load("gearbox_v3/gearbox_address_provider_v3")
REGISTER = load("gearbox_v3/gearbox_contracts_register")
CM = load("gearbox_v3/gearbox_credit_manager_v3")

CONTRACTS_REGISTER = b"CONTRACTS_REGISTER".ljust(32, b"\0")  # bytes32 AP_CONTRACTS_REGISTER
NO_VERSION_CONTROL = 0
V3 = range(300, 400)  # IVersion.version() of V3 contracts (3_00, 3_10, ...)


class LeftOut(StrEnum):
    NOT_V3 = "version not 3.x"
    NO_VERSION = "version() does not answer"


@dataclass(frozen=True)
class Excluded:
    credit_manager: str
    reason: LeftOut
    version: int | None = None


def split(versions: dict[str, int | None]) -> tuple[list[str], list[Excluded]]:
    """The credit managers to watch (V3) and those left out, with why, in the register's order."""
    kept: list[str] = []
    out: list[Excluded] = []
    for cm, v in versions.items():
        if v is None:
            out.append(Excluded(cm, LeftOut.NO_VERSION))
        elif v in V3:
            kept.append(cm)
        else:
            out.append(Excluded(cm, LeftOut.NOT_V3, v))
    return kept, out


async def credit_managers(chain: Chain, name: str, address_provider: str) -> list[str]:
    """The V3 credit managers registered behind ``address_provider`` (a StartupError naming the
    step when the provider or the register does not answer as Gearbox's)."""
    if not await chain.get_code(address_provider):
        raise StartupError(f"{name}: no contract at address_provider {address_provider}")
    get = PROVIDER.fn("getAddressOrRevert")
    try:
        raw = await chain.eth_call(address_provider, get.encode(CONTRACTS_REGISTER, NO_VERSION_CONTROL))
        register: str = get.decode(raw)
    except Exception as e:
        why = decode_revert(e.data, str(e)) if isinstance(e, RpcError) else str(e)
        raise StartupError(f"{name}: address_provider {address_provider} does not answer "
                           f'getAddressOrRevert("CONTRACTS_REGISTER", 0) as an AddressProviderV3: {why}') from None
    lst = REGISTER.fn("getCreditManagers")
    try:
        cms: list[str] = lst.decode(await chain.eth_call(register, lst.encode()))
    except Exception as e:
        why = decode_revert(e.data, str(e)) if isinstance(e, RpcError) else str(e)
        raise StartupError(f"{name}: ContractsRegister {register} (from address_provider {address_provider}) "
                           f"does not answer getCreditManagers(): {why}") from None
    ver = CM.fn("version")
    res = await chain.multicall([Call(cm, ver.encode(), ver.decode) for cm in cms])
    versions = {cm: None if isinstance(r, CallFailed) else int(r) for cm, r in zip(cms, res)}
    kept, excluded = split(versions)
    log.info("gearbox credit managers found", protocol=name, address_provider=address_provider,
             contracts_register=register, registered=len(cms), watched=len(kept), credit_managers=kept,
             left_out=[{"credit_manager": x.credit_manager, "reason": x.reason.value, "version": x.version}
                       for x in excluded])
    if not kept:
        raise StartupError(f"{name}: the ContractsRegister {register} of address_provider {address_provider} "
                           f"lists no V3 credit manager ({len(cms)} registered, none with version 3.x)")
    return kept
