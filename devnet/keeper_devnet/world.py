"""The local world: Anvil with Multicall3, test tokens with Chainlink mock feeds, Aave V3 (the real
@aave/core-v3 package, or the v3.3 stand-in), lenders' liquidity and a funded keeper wallet; plus
the config file that points the keeper at it."""
from __future__ import annotations

import asyncio
import importlib
import pkgutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account

from keeper_devnet.anvil import DEV_KEYS, Anvil
from keeper_devnet.deploy import Deployer
from keeper_devnet.protocols.aave_v3.common import AaveDeployment, borrow, supply
from keeper_devnet.tokens import Token, deploy_default_tokens, mint

KEEPER_KEY_ENV = "KEEPER_PRIVATE_KEY"
DEVNET_PASSWORD_ENV = "KEEPER_DEVNET_PASSWORD"
DEVNET_PASSWORD = "devnet"  # protects only Anvil's public dev key 1 in the devnet keystore
KEEPER_KEY = DEV_KEYS[1]  # Anvil dev account 1: a well-known test key, never a real one
KEEPER_ADDRESS = Account.from_key(KEEPER_KEY).address
# What the keeper's wallet holds to liquidate in inventory mode.
KEEPER_INVENTORY = {"USDC": 2_000_000, "WBTC": 20, "WETH": 500}
DEVNET_ACCOUNTS = 100  # Anvil dev accounts: lenders and borrowers of every protocol's demo positions


@dataclass
class World:
    url: str
    chain_id: int
    tokens: dict[str, Token]
    aave: AaveDeployment
    admin: str
    accounts: list[str]  # unlocked dev accounts free for borrowers and lenders
    keeper_address: str = KEEPER_ADDRESS
    contracts: dict[str, str] = field(default_factory=dict)  # protocol -> code that ran
    # `[[protocols]]` TOML blocks of every protocol deployed, by protocol name.
    entries: dict[str, str] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)  # other deployments (comet, morpho, ...)
    # Top-level TOML tables other than chain/signer/keeper (e.g. "pull_oracle"), by table name.
    sections: dict[str, str] = field(default_factory=dict)

    def take_accounts(self, n: int) -> list[str]:
        out, self.accounts = self.accounts[:n], self.accounts[n:]
        if len(out) < n:
            raise RuntimeError("not enough dev accounts: start Anvil with more --accounts")
        return out


def world_hooks() -> dict[str, Callable[[Deployer, World], Awaitable[None]]]:
    """Every protocol of the demo world after Aave (the world's lending base), and the function that
    adds it to a World: each folder of keeper_devnet.protocols that declares ``add_to_world``."""
    import keeper_devnet.protocols as pkg
    out = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"keeper_devnet.protocols.{info.name}")
        if hasattr(mod, "add_to_world"):
            out[info.name] = mod.add_to_world
    return out


ALL_PROTOCOLS = ("aave_v3", *world_hooks())


async def bare_world(d: Deployer) -> World:
    """Multicall3 and the default tokens with their feeds, no protocol: the base a test module adds
    one protocol to (each add_<protocol>_to_world takes a World). Dev accounts other than the
    deployer and the keeper are free for lenders and borrowers."""
    from keeper_devnet.multicall3 import install_multicall3
    await install_multicall3(d)
    tokens = await deploy_default_tokens(d)
    accounts = [a for a in await d.w3.eth.accounts if a not in (d.sender, KEEPER_ADDRESS)]
    return World(d.w3.provider.endpoint_uri, await d.w3.eth.chain_id, tokens, None, d.sender, accounts)


async def build_world(d: Deployer, *, aave: str = "real", lender_liquidity_usd: int = 5_000_000,
                      protocols: tuple[str, ...] = ("aave_v3",), uniswap: bool = True, inventory: bool = True,
                      pool_liquidity_usd: int = 10_000_000) -> World:
    """Multicall3, the tokens, Aave V3 (always: it is the world's lending base), Uniswap V3 pools for
    every market pair of ``pool_liquidity_usd`` a side and the keeper's LiquidationExecutor (unless
    ``uniswap`` is False), and every other protocol named in ``protocols`` with its demo positions;
    the keeper wallet funded with KEEPER_INVENTORY (unless ``inventory`` is False: it then holds
    only ETH for gas, as in flash mode)."""
    from keeper_devnet.multicall3 import install_multicall3
    await install_multicall3(d)
    tokens = await deploy_default_tokens(d)
    if aave == "real":
        from keeper_devnet.protocols.aave_v3.real import deploy_aave_v3
        dep = await deploy_aave_v3(d, tokens)
    else:
        from keeper_devnet.protocols.aave_v3.standin import deploy_aave_v33_standin
        dep = await deploy_aave_v33_standin(d, tokens)
    accounts = [a for a in await d.w3.eth.accounts if a not in (d.sender, KEEPER_ADDRESS)]
    world = World(d.w3.provider.endpoint_uri, await d.w3.eth.chain_id, tokens, dep, d.sender, list(accounts),
                  contracts={"aave_v3": dep.code}, entries={"aave_v3": aave_entry(dep)})
    lender = world.take_accounts(1)[0]
    for t in tokens.values():
        await supply(d, dep, lender, t, t.units(lender_liquidity_usd / (t.price / 1e8)))
    if inventory:
        for sym, amount in KEEPER_INVENTORY.items():
            await mint(d, tokens[sym], KEEPER_ADDRESS, tokens[sym].units(amount))
    if uniswap:
        from keeper_devnet.uniswap import add_uniswap_to_world
        await add_uniswap_to_world(d, world, liquidity_usd=pool_liquidity_usd)
        world.extra["executor"] = await deploy_executor(d, KEEPER_ADDRESS)
    for name in protocols:
        if name == "aave_v3":
            continue
        hooks = world_hooks()
        if name not in hooks:
            raise ValueError(f"unknown protocol {name!r}; the world knows {list(ALL_PROTOCOLS)}")
        await hooks[name](d, world)
    return world


async def open_position(d: Deployer, world: World, user: str, collateral: dict[str, float],
                        debt: dict[str, float]) -> None:
    """Supply whole-token amounts of collateral, then borrow whole-token amounts."""
    for sym, amt in collateral.items():
        await supply(d, world.aave, user, world.tokens[sym], world.tokens[sym].units(amt))
    for sym, amt in debt.items():
        await borrow(d, world.aave, user, world.tokens[sym], world.tokens[sym].units(amt))


async def deploy_executor(d: Deployer, owner: str) -> str:
    """The keeper's LiquidationExecutor (its shipped artifact) owned by ``owner``, deployed by the
    deployer account (the keeper's nonce is untouched)."""
    from eth_utils import to_checksum_address

    from keeper.executor import creation_code
    receipt = await d._send({"data": "0x" + creation_code(owner).hex()}, "deploy LiquidationExecutor")
    return to_checksum_address(receipt["contractAddress"])


# Protocol kinds whose entries take `execution` and `executor` (keeper.config_types.ExecutionConfig).
FLASH_KINDS = ("aave_v3", "morpho_blue", "compound_v3", "gearbox_v3")


def swap_sections(world: World, *, slippage_bps: int = 50, search_points: int = 8, search_rounds: int = 4,
                  morpho: bool = True, pools: list[str] | None = None) -> str:
    """[swap] over the world's Uniswap V3 and [flash] with the world's lenders (Morpho Blue when
    deployed and ``morpho``, Aave's Pool); ``pools``: the [swap] pools list (only those are used)."""
    uni = world.extra["uniswap"]
    dep = world.extra.get("morpho") if morpho else None
    lender = f'morpho = "{dep.morpho}"\n' if dep is not None else ""  # type: ignore[attr-defined]
    listed = "pools = [" + ", ".join(f'"{p}"' for p in pools) + "]\n" if pools is not None else ""
    return f"""
[swap]
factory = "{uni.factory}"
quoter = "{uni.quoter}"
router = "{uni.router}"
weth = "{world.tokens['WETH'].address}"
stablecoin = "{world.tokens['USDC'].address}"
slippage_bps = {slippage_bps}
search_points = {search_points}
search_rounds = {search_rounds}
{listed}
[flash]
{lender}aave_pool = "{world.aave.pool}"
"""


def with_execution(entry: str, execution: str, executor: str) -> str:
    """A [[protocols]] block with `execution` and `executor` set (flash-capable kinds only)."""
    import re
    kind = re.search(r'kind = "(\w+)"', entry)
    if kind is None or kind.group(1) not in FLASH_KINDS:
        return entry
    return entry.replace("[[protocols]]\n", f'[[protocols]]\nexecution = "{execution}"\nexecutor = "{executor}"\n', 1)


def write_devnet_keystore(path: Path) -> Path:
    """An encrypted keystore of Anvil's dev key 1 (cheap KDF: a public test key)."""
    import json
    path.write_text(json.dumps(Account.encrypt(KEEPER_KEY, DEVNET_PASSWORD, kdf="pbkdf2", iterations=2048)))
    return path


def aave_entry(dep: AaveDeployment, rules: str | None = None) -> str:
    return f"""
[[protocols]]
kind = "aave_v3"
name = "aave_v3"
addresses_provider = "{dep.provider}"
start_block = 0
close_factor_rules = "{rules or dep.rules}"
"""


def config_text(world: World, *, mode: str = "live", min_profit_usd: str = "1", max_gas_price_gwei: str = "50",
                rules: str | None = None, record_file: str | None = None, keystore: Path | None = None,
                protocols: list[str] | None = None, execution: str | None = None,
                swap: dict[str, Any] | None = None) -> str:
    """The keeper config for this world; ``protocols`` picks entries by name (default: all).
    With Uniswap in the world: [swap] and [flash] tables (``swap``: swap_sections keywords), and
    ``execution`` ("inventory" / "flash") set on every entry that takes it, with the world's executor."""
    entries = dict(world.entries)
    if rules:
        entries["aave_v3"] = aave_entry(world.aave, rules)
    if execution is not None:
        entries = {n: with_execution(e, execution, str(world.extra["executor"])) for n, e in entries.items()}
    chosen = "".join(entries[n] for n in (protocols or list(entries)))
    swaps = swap_sections(world, **(swap or {})) if "uniswap" in world.extra else ""
    rec = f'record_file = "{record_file}"\n' if record_file else ""
    signer = (f'keystore = "{keystore}"\npassword_env = "{DEVNET_PASSWORD_ENV}"' if keystore else
              f'private_key_env = "{KEEPER_KEY_ENV}"')
    return f"""# Written by `keeper devnet` for the local demo world (Anvil). Every key is explained in
# config.example.toml.
[chain]
rpc_url = "{world.url}"
chain_id = {world.chain_id}
poll_interval_seconds = 0.2

[signer]
{signer}
address = "{world.keeper_address}"

[keeper]
mode = "{mode}"
min_profit_usd = {min_profit_usd}
max_gas_price_gwei = {max_gas_price_gwei}
max_priority_fee_gwei = 2
native_usd_feed = "{world.tokens['WETH'].feed}"
{rec}{"".join(world.sections.values())}{swaps}{chosen}"""


async def serve_devnet(port: int, config_out: Path | None, stop: asyncio.Event) -> None:
    """`keeper devnet`: Anvil with the demo world, a ready config file, until Ctrl-C."""
    anvil = await Anvil.start(port, extra=["--accounts", str(DEVNET_ACCOUNTS)])
    try:
        d = await Deployer(anvil.url).init()
        try:
            world = await build_world(d, protocols=ALL_PROTOCOLS)
        finally:
            await d.close()
        path = config_out or Path(tempfile.gettempdir()) / f"keeper-devnet-{port}.toml"
        keystore = write_devnet_keystore(path.with_suffix(".keystore.json"))
        path.write_text(config_text(world, keystore=keystore))
        venues = [f"{k}: {v}" for k, v in world.contracts.items()] + [f"swaps: {world.extra['uniswap'].code}"]
        print(f"devnet: Anvil on {anvil.url} (chain id {world.chain_id}) with {'; '.join(venues)}")
        print(f"config: {path}")
        print(f"then: export {DEVNET_PASSWORD_ENV}={DEVNET_PASSWORD} && keeper run --config {path}")
        print("stop with Ctrl-C", flush=True)
        await stop.wait()
    finally:
        await anvil.stop()
