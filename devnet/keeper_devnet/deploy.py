"""Deploy and drive contracts on the local Anvil world (set-up only, not the keeper's hot path).

Transactions are sent with eth_sendTransaction from Anvil's unlocked dev accounts and always wait
for their receipt (Anvil automines asynchronously); a revert raises DeployError with the reason.
"""
from __future__ import annotations

import re
from typing import Any

from eth_utils import to_checksum_address
from web3 import AsyncWeb3
from web3.providers.rpc import AsyncHTTPProvider

from keeper_devnet.solc import Artifact


class DeployError(RuntimeError):
    pass


def link(bytecode: str, libraries: dict[str, str], link_references: dict) -> str:
    """Replace library placeholders. ``libraries`` maps library name -> address.

    ``link_references`` is solc's / Hardhat's {file: {Lib: [{start, length}]}} (byte offsets in
    the bytecode without 0x).
    """
    code = bytecode[2:] if bytecode.startswith("0x") else bytecode
    for _file, libs in link_references.items():
        for lib, sites in libs.items():
            if lib not in libraries:
                raise DeployError(f"library {lib} needed but not given")
            addr = libraries[lib].lower().removeprefix("0x")
            for site in sites:
                s = site["start"] * 2
                code = code[:s] + addr + code[s + site["length"] * 2:]
    if re.search(r"__\$[0-9a-fA-F]{34}\$__|__[A-Za-z0-9_:./]{36}__", code):
        raise DeployError("unlinked library placeholder left in bytecode")
    return "0x" + code


class Deployer:
    def __init__(self, url: str, default_sender: str | None = None):
        self.w3 = AsyncWeb3(AsyncHTTPProvider(url, request_kwargs={"timeout": 60}))
        self.sender = default_sender

    async def init(self) -> Deployer:
        if self.sender is None:
            self.sender = (await self.w3.eth.accounts)[0]
        return self

    async def close(self) -> None:
        await self.w3.provider.disconnect()

    async def rpc(self, method: str, params: list) -> Any:
        resp = await self.w3.provider.make_request(method, params)
        if "error" in resp:
            raise DeployError(f"{method}: {resp['error']}")
        return resp.get("result")

    async def _send(self, tx: dict, what: str) -> dict:
        tx.setdefault("from", self.sender)
        if "gas" not in tx:
            try:
                tx["gas"] = int(await self.w3.eth.estimate_gas(tx) * 1.3) + 50_000
            except Exception as e:  # revert during estimation: report it with context
                raise DeployError(f"{what}: {e}") from e
        h = await self.w3.eth.send_transaction(tx)
        receipt = await self.w3.eth.wait_for_transaction_receipt(h, timeout=60, poll_latency=0.01)
        if receipt["status"] != 1:
            raise DeployError(f"{what}: reverted (tx {h.hex()})")
        return receipt

    async def deploy(self, art: Artifact, *args, sender: str | None = None,
                     libraries: dict[str, str] | None = None) -> str:
        bytecode = art.bytecode
        if art.link_references:
            bytecode = link(bytecode, libraries or {}, art.link_references)
        c = self.w3.eth.contract(abi=art.abi, bytecode=bytecode)
        data = c._encode_constructor_data(*args)
        tx = {"data": data}
        if sender:
            tx["from"] = sender
        receipt = await self._send(tx, f"deploy {art.name}")
        return to_checksum_address(receipt["contractAddress"])

    def at(self, address: str, abi: list):
        return self.w3.eth.contract(address=to_checksum_address(address), abi=abi)

    async def transact(self, address: str, abi: list, fn: str, *args, sender: str | None = None,
                       value: int = 0) -> dict:
        c = self.at(address, abi)
        data = c.encode_abi(fn, list(args))
        tx = {"to": c.address, "data": data, "value": value}
        if sender:
            tx["from"] = sender
        return await self._send(tx, f"{fn}{args!r:.200}")

    async def call(self, address: str, abi: list, fn: str, *args) -> Any:
        return await self.at(address, abi).get_function_by_name(fn)(*args).call()
