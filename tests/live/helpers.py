"""The all-venue world the going-live tests rehearse and shadow, and each venue's own verdicts."""
from __future__ import annotations

from keeper_devnet.protocols.aave_v3.common import account_data
from keeper_devnet.protocols.compound_v3.world import comet_call
from keeper_devnet.protocols.gearbox_v3.world import account_state
from keeper_devnet.protocols.perennial_v2.world import (
    DEMO_UNHEALTHY as PERENNIAL_UNHEALTHY,
)
from keeper_devnet.tokens import Token, balance_of, set_price

E18 = 10**18
AAVE_POSITIONS = [({"WETH": 10}, {"USDC": 24_000 * f}) for f in (0.5, 0.74, 0.8)]  # 0.74, 0.8: liquidatable at -30%
MORPHO_UNHEALTHY = (0, 2, 3)  # MORPHO_DEMO_POSITIONS liquidatable after a 30% WETH drop


async def drop_weth(d, world, bps: int = 3_000) -> None:
    """A new round of the WETH feed, then a block some seconds later (a pull-oracle price published
    then is a newer version than the last committed one)."""
    weth = world.tokens["WETH"]
    await set_price(d, weth, weth.price * (10_000 - bps) // 10_000)
    await d.rpc("evm_increaseTime", [10])
    await d.rpc("evm_mine", [])


async def venue_verdicts(d, world) -> dict[str, set[str]]:
    """Accounts each venue itself calls liquidatable now (Perennial's at the fresh price the keeper
    commits, Morpho's by the demo's construction)."""
    gb = world.extra["gearbox"]
    return {
        "aave_v3": {u for u in world.extra["aave_borrowers"] if (await account_data(d, world.aave, u))[5] < E18},
        "compound_v3": {u for u in world.extra["comet_borrowers"]
                        if await comet_call(d, world.extra["comet"], "isLiquidatable", u)},
        "morpho_blue": {world.extra["morpho_borrowers"][i] for i in MORPHO_UNHEALTHY},
        "perennial_v2": {world.extra["perennial_accounts"][i] for i in PERENNIAL_UNHEALTHY},
        "gearbox_v3": {ca for ca in world.extra["gearbox_accounts"] if (await account_state(d, gb, ca)).liquidatable},
    }


async def chain_state(d, world, holders: list[str]) -> dict:
    """Block number, and per holder its nonce, native balance and every test token's balance."""
    out: dict = {"block": await d.w3.eth.block_number}
    for h in holders:
        out[h] = (await d.w3.eth.get_transaction_count(h), await d.w3.eth.get_balance(h),
                  {s: await balance_of(d, t, h) for s, t in world.tokens.items()})
    return out


def token(world, symbol: str) -> Token:
    return world.tokens[symbol]
