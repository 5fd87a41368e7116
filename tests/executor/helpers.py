"""A world for the LiquidationExecutor tests: the real Aave V3, Morpho Blue and Gearbox V3 (and the
Comet stand-in) with their demo positions, WETH crashed 30% ($3,000 -> $2,100), then the real
Uniswap V3 with pools created at the new oracle prices and of limited depth (so price impact shows
in every swap), and an executor deployed by a fresh owner wallet that holds ETH and no token."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_abi import decode
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from keeper_devnet.deploy import Deployer
from keeper_devnet.protocols.gearbox_v3.world import account_state, price_updates
from keeper_devnet.tokens import Token, set_price
from keeper_devnet.uniswap import (
    UniswapDeployment,
    UniswapPool,
    create_pool_at_price,
    deploy_uniswap_v3,
    quoter_artifact,
)
from keeper_devnet.world import World, build_world, open_position

from keeper.chain.client import Chain
from keeper.chain.fees import current_fees
from keeper.chain.rpc import Rpc
from keeper.chain.sender import Receipt, Sender, TxRequest
from keeper.chain.signer import Signer
from keeper.errors import RpcError
from keeper.executor import (
    AaveV3Liquidation,
    CompoundV3Liquidation,
    Flash,
    FlashSource,
    GearboxFullLiquidation,
    GearboxPartialLiquidation,
    MarketParams,
    MorphoBlueLiquidation,
    PriceUpdate,
    Swap,
    decode_error,
    deploy,
    encode_path,
    liquidate_aave_v3,
    liquidate_compound_v3,
    liquidate_gearbox_full,
    liquidate_gearbox_partial,
    liquidate_morpho_blue,
)

PROTOCOLS = ("aave_v3", "morpho_blue", "compound_v3", "gearbox_v3")
WETH_CRASH = 2_100_00000000  # $2,100 (8 decimals), from $3,000
POOL_DEPTH_USD = 1_000_000  # per side of each full-range pool: a $10k swap moves the price by ~2%
FEE = 3000
# Aave V3 borrowers (whole tokens) opened before the crash. After it: 10 x 2,100 x 0.825 / 20,000 =
# HF 0.866 (under 0.95: the whole debt may be repaid at once).
AAVE_POSITIONS = [({"WETH": 10}, {"USDC": 20_000}), ({"WETH": 10}, {"USDC": 20_000})]
TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
APPROVAL = "0x" + keccak(text="Approval(address,address,uint256)").hex()
ERC20_VIEWS = [
    {"type": "function", "name": "allowance", "stateMutability": "view",
     "inputs": [{"name": "o", "type": "address"}, {"name": "s", "type": "address"}],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "balanceOf", "stateMutability": "view",
     "inputs": [{"name": "a", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]},
]


@dataclass
class ExecWorld:
    d: Deployer
    world: World
    chain: Chain
    owner: Signer
    executor: str
    uni: UniswapDeployment
    pools: dict[str, UniswapPool]  # "WETH/USDC" -> pool (fee 3000, POOL_DEPTH_USD a side)
    gas: dict[str, int] = field(default_factory=dict)

    def token(self, symbol: str) -> Token:
        return self.world.tokens[symbol]

    def swap_all(self, sym_in: str, sym_out: str, *, fee: int = FEE, min_out: int = 0) -> Swap:
        """Swap everything seized of ``sym_in`` to ``sym_out`` through the direct pool."""
        return Swap(self.uni.router, encode_path([self.token(sym_in).address, self.token(sym_out).address], [fee]),
                    0, min_out)


async def build_exec_world(d: Deployer) -> ExecWorld:
    world = await build_world(d, protocols=PROTOCOLS, uniswap=False)
    users = world.take_accounts(len(AAVE_POSITIONS))
    for user, (collateral, debt) in zip(users, AAVE_POSITIONS):
        await open_position(d, world, user, collateral, debt)
    world.extra["aave_borrowers"] = users
    await set_price(d, world.tokens["WETH"], WETH_CRASH)
    uni = await deploy_uniswap_v3(d)
    pools = {f"{a}/{b}": await create_pool_at_price(d, uni, world.tokens[a], world.tokens[b], FEE,
                                                     liquidity_usd=POOL_DEPTH_USD)
             for a, b in [("WETH", "USDC"), ("WBTC", "USDC"), ("WETH", "WBTC")]}
    chain = Chain(Rpc(world.url))
    owner = Signer(Account.create())  # a fresh wallet: gas money only, no token at all
    await d.rpc("anvil_setBalance", [owner.address, hex(100 * 10**18)])
    deployed = await deploy(chain, owner)
    return ExecWorld(d, world, chain, owner, deployed.address, uni, pools,
                     gas={"deploy": deployed.receipt.gas_used})


async def balance(ew: ExecWorld, token: str, who: str) -> int:
    return await ew.d.call(token, ERC20_VIEWS, "balanceOf", who)


async def allowance(ew: ExecWorld, token: str, owner: str, spender: str) -> int:
    return await ew.d.call(token, ERC20_VIEWS, "allowance", owner, spender)


async def preview(ew: ExecWorld, data: bytes) -> int:
    """The profit an owner call would return (eth_call from the owner)."""
    raw = await ew.chain.eth_call(ew.executor, data, sender=ew.owner.address)
    (profit,) = decode(["uint256"], raw)
    return int(profit)


async def send(ew: ExecWorld, data: bytes, *, signer: Signer | None = None, to: str | None = None,
               gas: int | None = None) -> Receipt:
    """Sign and send through the keeper's Sender (gas from eth_estimateGas unless given: a
    transaction that must revert on chain needs it given); the receipt."""
    signer = signer or ew.owner
    to = to or ew.executor
    if gas is None:
        gas = int(await ew.chain.rpc.request("eth_estimateGas", [{"from": signer.address, "to": to,
                                                                   "data": "0x" + data.hex()}]), 16) + 50_000
    sender = Sender(ew.chain, signer, ew.world.chain_id)
    fees = await current_fees(ew.chain, max_priority_fee=10**9)
    return await sender.wait(await sender.send(TxRequest(to=to, data=data, gas=gas), fees))


def revert_data(e: RpcError) -> bytes:
    data = e.data
    if isinstance(data, dict):
        data = data.get("data")
    return bytes.fromhex(str(data).removeprefix("0x")) if data else b""


async def revert_of(ew: ExecWorld, data: bytes, *, sender: str | None = None, to: str | None = None) -> bytes:
    """The revert data of an eth_call that must revert."""
    try:
        await ew.chain.eth_call(to or ew.executor, data, sender=sender or ew.owner.address)
    except RpcError as e:
        return revert_data(e)
    raise AssertionError("the call did not revert")


async def executor_error(ew: ExecWorld, data: bytes, **kw: Any) -> tuple[str, tuple]:
    raw = await revert_of(ew, data, **kw)
    err = decode_error(raw)
    assert err is not None, f"not an executor error: 0x{raw.hex()}"
    return err


def _topic_address(topic: str) -> str:
    return to_checksum_address("0x" + topic[-40:])


async def assert_executor_clean(ew: ExecWorld, receipt: Receipt) -> None:
    """After the flow: the executor holds none of any token it received or any world token, and
    every allowance it gave in the transaction (from its Approval events) is back to 0."""
    me = ew.executor.lower()
    received = {lg.address for lg in receipt.logs
                if lg.topics and lg.topics[0] == TRANSFER and _topic_address(lg.topics[2]).lower() == me}
    approved = {(lg.address, _topic_address(lg.topics[2])) for lg in receipt.logs
                if lg.topics and lg.topics[0] == APPROVAL and _topic_address(lg.topics[1]).lower() == me}
    assert received and approved  # the flow moved tokens through the executor
    for token in received | {t.address for t in ew.world.tokens.values()}:
        assert await balance(ew, token, ew.executor) == 0, token
    for token, spender in approved:
        assert await allowance(ew, token, ew.executor, spender) == 0, (token, spender)


async def quote_exact_input(ew: ExecWorld, path: bytes, amount_in: int) -> int:
    """QuoterV2.quoteExactInput by eth_call: what the router would pay for ``amount_in``."""
    out = await ew.d.call(ew.uni.quoter, quoter_artifact().abi, "quoteExactInput", path, amount_in)
    return int(out[0])


def events(receipt: Receipt, address: str, signature: str, types: list[str]) -> list[tuple]:
    """Non-indexed fields of ``signature`` events emitted by ``address``."""
    topic = "0x" + keccak(text=signature).hex()
    return [decode(types, lg.data) for lg in receipt.logs
            if lg.address.lower() == address.lower() and lg.topics and lg.topics[0] == topic]


# ---------------------------------------------------------------------------- flow calldata builders
# Each returns build(profit: Profit) -> the owner's calldata.

def flash_of(ew: ExecWorld, source: FlashSource) -> Flash:
    lender = {FlashSource.MORPHO_BLUE: ew.world.extra["morpho"].morpho,
              FlashSource.AAVE_V3: ew.world.aave.pool,
              FlashSource.UNISWAP_V3: ew.pools["WBTC/USDC"].address}[source]
    return Flash(source, lender)


def aave_call(ew: ExecWorld, swap: Swap, source: FlashSource, *, debt: int, user_index: int = 0):
    """liquidationCall on aave_borrowers[user_index] covering ``debt`` USDC, seizing WETH."""
    user = ew.world.extra["aave_borrowers"][user_index]
    liq = AaveV3Liquidation(ew.world.aave.pool, ew.token("WETH").address, ew.token("USDC").address, user, debt)
    return lambda p: liquidate_aave_v3(liq, flash_of(ew, source), swap, p)


def morpho_call(ew: ExecWorld, swap: Swap, *, seized: int):
    dep = ew.world.extra["morpho"]
    m = dep.markets["WETH/USDC"]
    market = MarketParams(m.loan.address, m.collateral.address, m.oracle, m.irm, m.lltv)
    borrower = ew.world.extra["morpho_borrowers"][0]  # 10 WETH, 20,000 USDC: LTV 0.95 > 0.86 after the crash
    liq = MorphoBlueLiquidation(dep.morpho, market, borrower, seized, 0)
    return lambda p: liquidate_morpho_blue(liq, swap, p)


def comet_call(ew: ExecWorld, swap: Swap, source: FlashSource = FlashSource.MORPHO_BLUE, *, base_amount: int):
    comet = ew.world.extra["comet"]
    borrower = ew.world.extra["comet_borrowers"][2]  # 10 WETH, 20,000 USDC: liquidatable after the crash
    liq = CompoundV3Liquidation(comet.comet, comet.base.address, (borrower,), ew.token("WETH").address, base_amount, 0)
    return lambda p: liquidate_compound_v3(liq, flash_of(ew, source), swap, p)


def gearbox_updates(updates) -> tuple[PriceUpdate, ...]:
    return tuple(PriceUpdate(feed, data) for feed, data in updates)


async def gearbox_partial_call(ew: ExecWorld, swap: Swap, source: FlashSource, *, repaid: int):
    dep = ew.world.extra["gearbox"]
    ca = ew.world.extra["gearbox_accounts"][0]  # 10 WETH, 18,000 USDC: HF 0.992 after the crash
    updates = gearbox_updates(await price_updates(ew.d, dep))  # WETH's Pyth feed, at $2,100
    liq = GearboxPartialLiquidation(dep.credit_facade, dep.credit_manager, dep.underlying.address, ca,
                                    ew.token("WETH").address, repaid, 0, updates)
    return lambda p: liquidate_gearbox_partial(liq, flash_of(ew, source), swap, p)


async def gearbox_full_call(ew: ExecWorld, index: int, source: FlashSource, fee: int = FEE):
    """(build, total value V, collateral symbols) for a full liquidation of gearbox_accounts[index]
    adding V of USDC (the credit manager keeps 0.96 V and sends the rest back)."""
    dep = ew.world.extra["gearbox"]
    ca = ew.world.extra["gearbox_accounts"][index]
    raw = await price_updates(ew.d, dep)
    value = (await account_state(ew.d, dep, ca, raw)).total_value
    held = [s for s, t in dep.collaterals.items() if await balance(ew, t.address, ca) > 1]
    liq = GearboxFullLiquidation(dep.credit_facade, dep.credit_manager, dep.underlying.address, ca, value,
                                 tuple(dep.collaterals[s].address for s in held), gearbox_updates(raw))
    swaps = [ew.swap_all(s, "USDC", fee=fee) for s in held]
    return (lambda p: liquidate_gearbox_full(liq, flash_of(ew, source), swaps, p)), value, held
