"""Flash-mode test worlds and checks: the keeper wallet holds ETH only (no debt, base or underlying
token at all), Uniswap V3 pools of limited depth at the oracle price (re-aligned after the WETH
crash, as arbitrageurs would), the keeper's LiquidationExecutor in the world, Morpho Blue as a
fee-free flash lender where deployed."""
from __future__ import annotations

from eth_abi import decode
from keeper_devnet.tokens import balance_of, set_price
from keeper_devnet.uniswap import align_world_pools, quoter_artifact
from keeper_devnet.world import KEEPER_ADDRESS, World, build_world

from keeper.abi import Abi
from keeper.executor import decode_profit
from tests.helpers.keeper import make_keeper, step

WETH_CRASH = 2_100_00000000  # $2,100 (8 decimals), from $3,000
LIQUIDATION_EVENT = "Liquidation(address,uint256)"


async def flash_world(d, protocols: tuple[str, ...], *, pool_usd: int) -> World:
    """build_world without the keeper's inventory, with pools of ``pool_usd`` a side."""
    return await build_world(d, protocols=protocols, inventory=False, pool_liquidity_usd=pool_usd)


async def crash_weth(d, world: World, price: int = WETH_CRASH) -> None:
    """WETH's feed to ``price``, then every pool back at the oracle price (an arbitrageur's swaps)."""
    await set_price(d, world.tokens["WETH"], price)
    await align_world_pools(d, world)


async def flash_keeper(world: World, tmp_path, protocols: list[str], **cfg):
    return await make_keeper(world, tmp_path, execution="flash", protocols=protocols, **cfg)


async def wallet_tokens(d, world: World, who: str = KEEPER_ADDRESS) -> dict[str, int]:
    return {s: await balance_of(d, t, who) for s, t in world.tokens.items()}


async def quote(d, world: World, path: bytes, amount: int, block: int | None = None) -> int:
    """QuoterV2.quoteExactInput(path, amount).amountOut by eth_call (at ``block``)."""
    fn = Abi(quoter_artifact().abi).fn("quoteExactInput")
    tx = {"to": world.extra["uniswap"].quoter, "data": "0x" + fn.encode(path, amount).hex()}
    raw = await d.w3.eth.call(tx, block) if block is not None else await d.w3.eth.call(tx)
    return int(fn.decode(bytes(raw))[0])


async def preview(d, world: World, data: bytes, block: int | None = None) -> int | None:
    """What the executor's entry point returns (the profit) for the owner's ``data`` by eth_call
    (at ``block``); None when it reverts."""
    tx = {"from": KEEPER_ADDRESS, "to": world.extra["executor"], "data": "0x" + data.hex()}
    try:
        raw = await d.w3.eth.call(tx, block) if block is not None else await d.w3.eth.call(tx)
    except Exception:  # noqa: BLE001 - a revert: that size does not pay or is refused
        return None
    return decode_profit(bytes(raw))


def liquidation_events(receipt, executor: str) -> list[tuple[str, int]]:
    """(profit token, profit) of the executor's Liquidation events in a web3 receipt."""
    from eth_utils import keccak, to_checksum_address
    topic = keccak(text=LIQUIDATION_EVENT)
    return [(to_checksum_address("0x" + lg["topics"][1].hex()[-40:]), decode(["uint256"], bytes(lg["data"]))[0])
            for lg in receipt["logs"]
            if lg["address"].lower() == executor.lower() and bytes(lg["topics"][0]) == topic]


async def check_flash_outcome(d, world: World, o: dict) -> tuple[str, int, list]:
    """A confirmed flash liquidation: sent to the executor by the keeper, its Liquidation events'
    profit is what the owner's wallet gained in the profit token (the realised figure's source),
    realised within 1% of predicted, and the executor is left holding nothing. Returns (profit
    token, profit, receipts)."""
    assert o["status"] == "confirmed" and o["details"]["execution"] == "flash", o
    executor = world.extra["executor"]
    receipts, gains = [], []
    for h in o["details"]["tx_hashes"]:
        rc = await d.w3.eth.get_transaction_receipt(h)
        assert rc["status"] == 1 and rc["to"] == executor and rc["from"] == KEEPER_ADDRESS
        receipts.append(rc)
        gains += liquidation_events(rc, executor)
    (token,) = {t for t, _ in gains}
    profit = sum(p for _, p in gains)
    assert o["details"]["token_deltas"] == {token: str(profit)}  # the owner's balance change
    assert profit > 0 and o["realised_profit_usd"] > 0
    assert abs(o["realised_profit_usd"] - o["predicted_profit_usd"]) <= 0.01 * o["predicted_profit_usd"]
    for t in world.tokens.values():
        assert await balance_of(d, t, executor) == 0
    return token, profit, receipts


async def run_with_arbitrage(d, world: World, keeper, rounds: int = 8) -> None:
    """Keeper steps until one records nothing new; after each, the pools are brought back to the
    oracle price, as arbitrageurs do between blocks (the keeper's own sales move them)."""
    for _ in range(rounds):
        before = [(o.attempt, o.status) for o in keeper.recorder.outcomes]
        await step(keeper)
        await align_world_pools(d, world)
        if [(o.attempt, o.status) for o in keeper.recorder.outcomes] == before:
            return
