"""The incremental Aave V3 mirror against the real Pool (@aave/core-v3 1.19.3, interest accruing):
after random supplies, borrows, repays, withdrawals, aToken transfers, collateral switches, time
passing, price moves and the keeper's own liquidations, the mirror's account data of every user
equals the Pool's getUserAccountData at the same block, to the unit."""
from __future__ import annotations

import copy
import os
import random

import pytest

from keeper.abi import load
from keeper.chain.multicall import Call
from keeper.protocols.aave_v3.adapter import AaveV3Adapter
from keeper_devnet.deploy import DeployError
from keeper_devnet.protocols.aave_v3.common import borrow, supply
from keeper_devnet.tokens import approve, set_price
from keeper_devnet.world import open_position
from tests.helpers.keeper import make_keeper, step

POOL = load("aave_v3/AaveV3Pool")
UINT_MAX = 2**256 - 1
USER_ABI = [
    {"type": "function", "name": "repay", "stateMutability": "nonpayable", "outputs": [{"name": "", "type": "uint256"}],
     "inputs": [{"name": "asset", "type": "address"}, {"name": "amount", "type": "uint256"},
                {"name": "interestRateMode", "type": "uint256"}, {"name": "onBehalfOf", "type": "address"}]},
    {"type": "function", "name": "withdraw", "stateMutability": "nonpayable",
     "outputs": [{"name": "", "type": "uint256"}],
     "inputs": [{"name": "asset", "type": "address"}, {"name": "amount", "type": "uint256"},
                {"name": "to", "type": "address"}]},
    {"type": "function", "name": "setUserUseReserveAsCollateral", "stateMutability": "nonpayable", "outputs": [],
     "inputs": [{"name": "asset", "type": "address"}, {"name": "useAsCollateral", "type": "bool"}]},
    {"type": "function", "name": "transfer", "stateMutability": "nonpayable", "outputs": [{"name": "", "type": "bool"}],
     "inputs": [{"name": "to", "type": "address"}, {"name": "amount", "type": "uint256"}]},
    {"type": "function", "name": "balanceOf", "stateMutability": "view", "outputs": [{"name": "", "type": "uint256"}],
     "inputs": [{"name": "a", "type": "address"}]},
]


@pytest.fixture
async def world(real_world, snapshot):
    yield copy.deepcopy(real_world)


async def chain_view(keeper, adapter: AaveV3Adapter, block: int) -> dict[str, tuple[int, int, int]]:
    fn = POOL.fn("getUserAccountData")
    users = list(adapter.users)
    res = await keeper.chain.multicall_strict([Call(adapter.pool, fn.encode(u), fn.decode) for u in users], block)
    return {u: (d[0], d[1], d[5]) for u, d in zip(users, res)}


def mirror_view(adapter: AaveV3Adapter) -> dict[str, tuple[int, int, int]]:
    m = adapter.mirror
    assert m is not None
    terms = m.terms()
    return {u: (d.total_collateral_base, d.total_debt_base, d.health_factor)
            for u in adapter.users for d in [m.account(u, terms)]}


async def test_random_operations_keep_the_mirror_exact(deployer, world, tmp_path):
    rng = random.Random(int(os.environ.get("MIRROR_SEED", "17")))
    t = world.tokens
    users = world.take_accounts(8)
    for u in users:  # WETH or WBTC collateral, USDC or WETH debt at 30-70% of the limit
        coll = rng.choice(["WETH", "WBTC"])
        amount = {"WETH": 10, "WBTC": 0.5}[coll]
        debt_sym = "USDC" if coll == "WBTC" or rng.random() < 0.7 else "WBTC"
        value = amount * t[coll].price / 1e8 * rng.uniform(0.3, 0.7)
        await open_position(deployer, world, u, {coll: amount}, {debt_sym: value / (t[debt_sym].price / 1e8)})
    keeper = await make_keeper(world, tmp_path)
    adapter = keeper.by_name["aave_v3"]
    assert isinstance(adapter, AaveV3Adapter) and adapter.mirror is not None
    pool = world.aave.pool
    kinds: list[str] = []
    try:
        plan = ["supply", "borrow", "repay", "withdraw", "transfer", "collateral", "time", "price", "price"] * 4
        plan.append("crash")  # last: WETH and WBTC down 40%, so that there is something to liquidate
        rng.shuffle(plan)
        for i, kind in enumerate(plan):
            u = rng.choice(users)
            sym = rng.choice(list(t))
            tok = t[sym]
            try:
                if kind == "supply":
                    await supply(deployer, world.aave, u, tok, tok.units(rng.uniform(0.01, 0.2)
                                                                         * {"USDC": 5000, "WBTC": 0.2, "WETH": 3}[sym]))
                elif kind == "borrow":
                    step_size = {"USDC": 300, "WBTC": 0.005, "WETH": 0.1}[sym]
                    await borrow(deployer, world.aave, u, tok, tok.units(step_size))
                elif kind == "repay":
                    owing = [s for s in t if await deployer.call(world.aave.extra["variable_debt"][s], USER_ABI,
                                                                 "balanceOf", u)]
                    if not owing:
                        continue
                    sym = rng.choice(owing)
                    tok = t[sym]
                    owed = await deployer.call(world.aave.extra["variable_debt"][sym], USER_ABI, "balanceOf", u)
                    held = await deployer.call(tok.address, USER_ABI, "balanceOf", u)
                    amount = min(owed // rng.choice([1, 2, 3]), held)
                    if amount == 0:
                        continue
                    await approve(deployer, tok, u, pool, amount)
                    await deployer.transact(pool, USER_ABI, "repay", tok.address, amount, 2, u, sender=u)
                elif kind == "withdraw":
                    a_bal = await deployer.call(world.aave.extra["a_tokens"][sym], USER_ABI, "balanceOf", u)
                    await deployer.transact(pool, USER_ABI, "withdraw", tok.address, a_bal // 10, u, sender=u)
                elif kind == "transfer":  # aToken BalanceTransfer between two known users
                    a_tok = world.aave.extra["a_tokens"][sym]
                    a_bal = await deployer.call(a_tok, USER_ABI, "balanceOf", u)
                    await deployer.transact(a_tok, USER_ABI, "transfer", rng.choice(users), a_bal // 7, sender=u)
                elif kind == "collateral":
                    await deployer.transact(pool, USER_ABI, "setUserUseReserveAsCollateral", tok.address,
                                            rng.random() < 0.5, sender=u)
                elif kind == "time":
                    await deployer.rpc("evm_increaseTime", [rng.randint(600, 30 * 86400)])
                    await deployer.rpc("evm_mine", [])
                elif kind == "crash":
                    for sym in ("WETH", "WBTC"):
                        t[sym].price = t[sym].price * 60 // 100
                        await set_price(deployer, t[sym], t[sym].price)
                else:  # a move of up to 25% either way; a big drop lets the keeper liquidate
                    if sym == "USDC":
                        continue
                    tok.price = tok.price * rng.randint(75, 120) // 100
                    await set_price(deployer, tok, tok.price)
            except DeployError:
                continue  # the Pool refused it (e.g. the withdrawal would leave HF < 1): nothing changed
            kinds.append(kind)
            block = await keeper.chain.block_number()
            await step(keeper, block)  # mirrors the block, then liquidates what is liquidatable
            assert mirror_view(adapter) == await chain_view(keeper, adapter, block), f"step {i}: {kind}"
            after = await keeper.chain.block_number()
            while after > block:  # the keeper liquidated: the next step mirrors the LiquidationCall logs
                block = after
                await step(keeper, block)
                assert mirror_view(adapter) == await chain_view(keeper, adapter, block), f"after {kind}"
                after = await keeper.chain.block_number()
    finally:
        await keeper.close()
    liquidations = [o for o in keeper.recorder.outcomes if o.tx_hash]
    assert {"supply", "borrow", "repay", "time", "price"} <= set(kinds)
    assert liquidations, "the random walk should have produced a liquidation"
    assert adapter.mirror.stats.confirm_mismatches == 0
    assert adapter.mirror.stats.reread < 8 * len(kinds)  # only users named by logs are read again
