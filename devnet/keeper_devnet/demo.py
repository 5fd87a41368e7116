"""`keeper demo`: a devnet with every protocol of the world, ~20 Aave positions at varied health
(plus each protocol's own demo positions), the keeper running, a 30% drop of the WETH price; then
each liquidation with its protocol, its route and its predicted and realised profit.

Flash mode by default: the keeper wallet holds ETH for gas and no token at all; every liquidation
goes through the keeper's LiquidationExecutor, which borrows the repayment, sells the seized
collateral on Uniswap V3 and leaves the profit in the repaid token. Between blocks the pools are
brought back to the oracle price, as arbitrageurs do (the keeper's own sales move them).
``execution="inventory"``: the wallet holds KEEPER_INVENTORY, pays and keeps the collateral."""
from __future__ import annotations

import tempfile
from pathlib import Path

import structlog
from eth_account import Account

from keeper.chain.signer import Signer
from keeper.config import load_config
from keeper.engine.daemon import Keeper
from keeper_devnet.anvil import Anvil
from keeper_devnet.deploy import Deployer
from keeper_devnet.tokens import balance_of, set_price
from keeper_devnet.uniswap import align_world_pools
from keeper_devnet.world import (
    ALL_PROTOCOLS,
    DEVNET_ACCOUNTS,
    KEEPER_KEY,
    World,
    build_world,
    config_text,
    open_position,
)

log = structlog.get_logger()

# (collateral, debt) in whole tokens at WETH $3000, WBTC $60000, USDC $1. WETH: LTV 80%, LT 82.5%.
# After a 30% WETH drop, a WETH/USDC position borrowed at fraction f of its LTV has
# HF = 0.7 x 0.825 / (0.8 f): below 1 from f ~ 0.72, at or below 0.95 from f ~ 0.76.
DEMO_POSITIONS: list[tuple[dict[str, float], dict[str, float]]] = [
    ({"WETH": 10}, {"USDC": 24_000 * f}) for f in (0.5, 0.6, 0.65, 0.7, 0.73, 0.74, 0.8, 0.9, 0.97)
] + [
    ({"WETH": 40}, {"USDC": 96_000 * f}) for f in (0.55, 0.74, 0.85)
] + [
    ({"WETH": 1}, {"USDC": 2_400 * 0.95}),  # a small position
    ({"WBTC": 1}, {"USDC": 30_000}),  # untouched by the WETH drop
    ({"WBTC": 2}, {"USDC": 80_000}),
    ({"WBTC": 0.5, "WETH": 10}, {"USDC": 40_000}),  # mixed collateral: the keeper picks the pair
    ({"WBTC": 0.2, "WETH": 20}, {"USDC": 50_000}),
    ({"WETH": 15}, {"WBTC": 0.5}),  # WBTC debt
    ({"WETH": 20}, {"USDC": 20_000, "WBTC": 0.25}),  # two debts
    ({"USDC": 50_000}, {"WETH": 8}),  # borrows WETH against USDC: gains from the drop
]


async def open_demo_positions(d: Deployer, world: World) -> list[str]:
    users = world.take_accounts(len(DEMO_POSITIONS))
    for user, (coll, debt) in zip(users, DEMO_POSITIONS):
        await open_position(d, world, user, coll, debt)
    return users


async def run_rounds(keeper: Keeper, max_rounds: int, d: Deployer | None = None, world: World | None = None,
                     credited: dict | None = None) -> None:
    """Block steps, each followed by the chain's answer to what it sent (the transaction manager
    settles it), until one records nothing new; with ``world``, its pools are brought back to the
    oracle price after each step (arbitrageurs). ``credited`` collects the rewards the keeper saw
    credited and unclaimed (a venue may credit them while the rounds run)."""
    for _ in range(max_rounds):
        before = [(o.attempt, o.status) for o in keeper.recorder.outcomes]
        await keeper.step(await keeper.chain.block_number())
        await keeper.settle()
        if credited is not None:
            credited.update({p: {t: str(a) for t, a in r.items()} for p, r in keeper.recorder.pending_rewards.items()})
        if d is not None and world is not None:
            await align_world_pools(d, world)
        if [(o.attempt, o.status) for o in keeper.recorder.outcomes] == before:
            return


async def settle_deferred_rewards(d: Deployer, world: World, keeper: Keeper) -> dict:
    """Protocols that pay liquidators later (Perennial: at the next oracle version): what the
    venue's own oracle keepers do (commit the requested version, settle the accounts) so that the
    reward is credited; returns the rewards the keeper then sees as credited and unclaimed."""
    per = world.extra.get("perennial")
    if per is not None:
        from keeper_devnet.protocols.perennial_v2.world import (
            commit_price,
            oracle_call,
            settle,
        )
        if await oracle_call(d, per, "next"):
            await commit_price(d, per)
            await settle(d, per, world.extra["perennial_accounts"])
    await keeper.scan()  # mirrors every protocol, pending rewards included
    return {p: {t: str(a) for t, a in r.items()} for p, r in keeper.recorder.pending_rewards.items()}


async def run_demo(*, drop_bps: int = 3_000, max_rounds: int = 12,
                   protocols: tuple[str, ...] = ALL_PROTOCOLS, execution: str = "flash") -> dict:
    if execution not in ("flash", "inventory"):
        raise ValueError(f"execution must be 'flash' or 'inventory', not {execution!r}")
    flash = execution == "flash"
    anvil = await Anvil.start(extra=["--accounts", str(DEVNET_ACCOUNTS)])
    try:
        d = await Deployer(anvil.url).init()
        try:
            world = await build_world(d, protocols=protocols, inventory=not flash)
            users = await open_demo_positions(d, world)
            cfg_path = Path(tempfile.mkdtemp(prefix="keeper-demo-")) / "demo.toml"
            cfg_path.write_text(config_text(world, execution=execution))
            wallet_before = {sym: await balance_of(d, t, world.keeper_address) for sym, t in world.tokens.items()}
            cfg = load_config(cfg_path)
            keeper = Keeper(cfg, Signer(Account.from_key(KEEPER_KEY)))
            try:
                await keeper.start()
                await keeper.step(await keeper.chain.block_number())  # all healthy: nothing to do
                weth = world.tokens["WETH"]
                new_price = weth.price * (10_000 - drop_bps) // 10_000
                log.info("demo.price_drop", token="WETH", old=weth.price / 1e8, new=new_price / 1e8)
                await set_price(d, weth, new_price)
                await align_world_pools(d, world)  # the market follows the oracle
                # A few seconds pass: a pull-oracle price published now is newer than the last
                # version committed on chain (Anvil may repeat timestamps otherwise).
                await d.rpc("evm_increaseTime", [10])
                await d.rpc("evm_mine", [])
                credited: dict = {}
                await run_rounds(keeper, max_rounds, d, world, credited)
                credited.update(await settle_deferred_rewards(d, world, keeper))
                await run_rounds(keeper, max_rounds, d, world)  # claims what is worth claiming
                still = [r for r in await keeper.scan() if r.liquidatable]
            finally:
                await keeper.close()
        finally:
            await d.close()
    finally:
        await anvil.stop()
    report = keeper.recorder.report()
    for o in report["liquidations"] + report["claims"]:
        o["execution"] = o["details"].get("execution", "inventory")  # how it was paid
        o["route"] = _route(o["details"])
    report["execution"] = execution
    report["wallet_before"] = {sym: str(a) for sym, a in wallet_before.items()}  # flash: no token at all
    report["rewards_credited_before_claim"] = credited
    report["contracts"] = world.contracts
    report["positions"] = count_positions(users, world.extra)
    report["still_liquidatable"] = [{"protocol": r.protocol, "account": r.account, "why": r.why} for r in still]
    return report


def count_positions(aave_users: list[str], extra: dict[str, object]) -> int:
    """The demo's positions: Aave's borrowers, then for each other protocol its accounts that hold a
    position (``<protocol>_accounts``: Gearbox's credit accounts, Perennial's accounts) or, when it
    lists none, its borrowers; never both (a Gearbox borrower and its credit account are one position)."""
    protocols = {k.rsplit("_", 1)[0] for k in extra if k.endswith(("_borrowers", "_accounts"))}
    held = [extra[f"{p}_accounts" if f"{p}_accounts" in extra else f"{p}_borrowers"] for p in sorted(protocols)]
    return len(aave_users) + sum(len(x) for x in held if isinstance(x, list))


def _route(details: dict) -> str | None:
    """The Uniswap V3 route(s) a flash liquidation sold through (its details' flash report(s))."""
    f = details.get("flash")
    if isinstance(f, dict):
        return str(f["route"])
    if isinstance(f, list) and f:
        return " + ".join(str(x["route"]) for x in f)
    return None


def print_report(report: dict) -> None:
    liq = report["liquidations"]
    by_protocol = {p: sum(o["protocol"] == p for o in liq) for p in report["contracts"]}
    print(f"{len(liq)} liquidations {by_protocol}, {len(report['reverted'])} reverted, "
          f"{len(report['skipped'])} skipped ({report['positions']} positions), execution: {report['execution']}")
    print("contracts: " + ", ".join(f"{p} = {c}" for p, c in report["contracts"].items()))
    for o in liq:
        print(f"  {o['protocol']:<12} {o['account']}  {o['label']:<22} tx {o['tx_hash'][:12]}…  "
              f"predicted {o['predicted_profit_usd']:>10,.2f} USD  realised {o['realised_profit_usd']:>10,.2f} USD"
              f"  [{o['execution']}{': ' + o['route'] if o.get('route') else ''}]")
    for o in report["reverted"]:
        print(f"  REVERTED {o['protocol']:<12} {o['account']}  {o['label']:<22} tx {o['tx_hash'][:12]}…  "
              f"gas {o['gas_used']:,}  realised {o['realised_profit_usd']:,.4f} USD: {o['reason']}")
    for p, rewards in report.get("rewards_credited_before_claim", {}).items():
        print(f"  {p} rewards credited, not yet claimed: " + ", ".join(f"{a} of {t}" for t, a in rewards.items()))
    for o in report.get("claims", []):
        print(f"  {o['protocol']:<12} {o['label']}  tx {o['tx_hash'][:12]}…  collected "
              f"{o['details'].get('collects')}  "
              f"(booked at the liquidation; net now {o['realised_profit_usd']:,.4f} USD)")
    for o in report["skipped"]:
        print(f"  skipped {o['protocol']} {o['account']}: {o['reason']}")
