"""Gearbox V3 (the real @gearbox-protocol/core-v3 1.52.1 contracts, version 3_10) in the local world.

Compiled from node_modules with Gearbox's own settings (solc 0.8.23, evm shanghai, optimizer 1000 runs,
bytecode hash none) in one standard-JSON job; `@openzeppelin/contracts` is remapped to `oz4` (the
OpenZeppelin 4.9.6 the repo pins, installed under an npm alias). The governance trio the package does
not publish (ACL, ContractsRegister, AddressProvider, plus the price feed store) is
contracts/gearbox/GovStandIn.sol. Deployment order and parameters follow
shared/real_contracts_gearbox.md section 4: one USDC pool, WETH and WBTC as quoted collateral priced
by the world's own Chainlink mock feeds, one credit manager with its facade and configurator.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eth_utils import to_checksum_address

from keeper.devnet.deploy import Deployer
from keeper.devnet.solc import artifact, compile_standard_json
from keeper.devnet.tokens import Token, approve, balance_of, mint
from keeper.protocols import gearbox_v3_math as gm

if TYPE_CHECKING:
    from keeper.devnet.world import World

GEARBOX_CODE = "@gearbox-protocol/core-v3@1.52.1"
_G = "@gearbox-protocol/core-v3/contracts"
GOV_SOURCE = "contracts/gearbox/GovStandIn.sol"
# (contract name, source) of everything deployed, in one compile job.
CONTRACTS = {
    "PoolV3": f"{_G}/pool/PoolV3.sol",
    "LinearInterestRateModelV3": f"{_G}/pool/LinearInterestRateModelV3.sol",
    "PoolQuotaKeeperV3": f"{_G}/pool/PoolQuotaKeeperV3.sol",
    "TumblerV3": f"{_G}/pool/TumblerV3.sol",
    "PriceOracleV3": f"{_G}/core/PriceOracleV3.sol",
    "BotListV3": f"{_G}/core/BotListV3.sol",
    "DefaultAccountFactoryV3": f"{_G}/core/DefaultAccountFactoryV3.sol",
    "AliasedLossPolicyV3": f"{_G}/core/AliasedLossPolicyV3.sol",
    "CreditManagerV3": f"{_G}/credit/CreditManagerV3.sol",
    "CreditFacadeV3": f"{_G}/credit/CreditFacadeV3.sol",
    "CreditConfiguratorV3": f"{_G}/credit/CreditConfiguratorV3.sol",
    "GovStandIn": GOV_SOURCE,
}
# Compiled as an import of the facade: encodes the inner calls of the facade's multicalls.
MULTICALL_IFACE = ("ICreditFacadeV3Multicall", f"{_G}/interfaces/ICreditFacadeV3Multicall.sol")
COMPILE_SETTINGS = dict(compiler="solc_0_8_23", optimizer_runs=1000, evm_version="shanghai", bytecode_hash="none",
                        remappings=["@openzeppelin/contracts/=oz4/"])

PERCENTAGE_FACTOR = 10_000
YEAR = 365 * 86400
STALENESS_PERIOD = YEAR  # the world's feeds only move on demand (a Chainlink round each set_price)
TREASURY = to_checksum_address("0x" + "7ea5" * 10)  # receives liquidation fees (USDC) and diesel
# CreditManagerV3 constructor fees (bps): LT of underlying = 10000 - 400 - 150 = 9450; discount 9600.
FEE_INTEREST, FEE_LIQUIDATION, LIQUIDATION_PREMIUM = 1_000, 150, 400
FEE_LIQUIDATION_EXPIRED, LIQUIDATION_PREMIUM_EXPIRED = 100, 200
MAX_ENABLED_TOKENS = 4
MIN_DEBT, MAX_DEBT = 1_000, 25_000  # whole USDC; maxDebt x maxEnabledTokens <= 100 x minDebt
DEFAULT_LTS = {"WETH": 8_500, "WBTC": 8_000}
QUOTA_RATE = 500  # 5%/year on quotas (TumblerV3.setRate)
QUOTA_LIMIT = 10**12  # per token, in USDC units
CM_DEBT_LIMIT = 10**12
EPOCH_LENGTH = 7 * 86400

_output: dict | None = None


async def compile_gearbox() -> dict:
    """The standard-JSON output of the one compile job (cached on disk by keeper.devnet.solc)."""
    global _output
    if _output is None:
        _output = await compile_standard_json(list(CONTRACTS.values()), **COMPILE_SETTINGS)
    return _output


async def gearbox_abis() -> dict[str, list]:
    out = await compile_gearbox()
    abis = {name: out["contracts"][src][name]["abi"] for name, src in CONTRACTS.items()}
    name, src = MULTICALL_IFACE
    abis[name] = out["contracts"][src][name]["abi"]
    return abis


async def all_errors() -> list[dict]:
    """Every custom error declared in the compile job (facade reverts may come from the credit
    manager, the oracle, the pool or 1inch's SafeERC20), deduplicated by signature."""
    out = await compile_gearbox()
    seen: dict[str, dict] = {}
    for units in out["contracts"].values():
        for c in units.values():
            for e in c["abi"]:
                if e["type"] == "error":
                    sig = f"{e['name']}({','.join(i['type'] for i in e['inputs'])})"
                    seen.setdefault(sig, e)
    return [seen[k] for k in sorted(seen)]


@dataclass
class GearboxDeployment:
    gov: str  # GovStandIn: ACL, ContractsRegister, AddressProvider and price feed store
    pool: str
    irm: str
    pool_quota_keeper: str
    tumbler: str
    price_oracle: str
    bot_list: str
    account_factory: str
    loss_policy: str
    credit_manager: str
    credit_facade: str
    credit_configurator: str
    underlying: Token
    collaterals: dict[str, Token]
    lts: dict[str, int]  # symbol -> LT (bps)
    min_debt: int  # underlying units
    max_debt: int
    treasury: str = TREASURY
    abis: dict[str, list] = field(default_factory=dict, repr=False)  # contract name -> ABI
    code: str = GEARBOX_CODE

    def token(self, symbol: str) -> Token:
        return self.underlying if symbol == self.underlying.symbol else self.collaterals[symbol]


async def deploy_gearbox(d: Deployer, tokens: dict[str, Token], *, underlying: str = "USDC",
                         lts: dict[str, int] | None = None, min_debt: int = MIN_DEBT,
                         max_debt: int = MAX_DEBT) -> GearboxDeployment:
    """One Gearbox V3 market on ``tokens``: a ``underlying`` pool and a credit manager taking the
    ``lts`` tokens (symbol -> LT in bps) as quoted collateral. Debt limits in whole underlying."""
    lts = dict(lts or DEFAULT_LTS)
    out = await compile_gearbox()
    art = {name: artifact(out, src, name) for name, src in CONTRACTS.items()}
    abis = await gearbox_abis()
    u = tokens[underlying]
    me = d.sender

    async def tx(addr: str, name: str, fn: str, *args) -> dict:
        return await d.transact(addr, abis[name], fn, *args)

    gov = await d.deploy(art["GovStandIn"])  # INSTANCE_MANAGER_PROXY = deployer, PRICE_FEED_STORE = itself
    oracle = await d.deploy(art["PriceOracleV3"], gov)
    for t in [u, *(tokens[s] for s in lts)]:
        await tx(oracle, "PriceOracleV3", "setPriceFeed", t.address, t.feed, STALENESS_PERIOD)
        await tx(oracle, "PriceOracleV3", "setReservePriceFeed", t.address, t.feed, STALENESS_PERIOD)
    irm = await d.deploy(art["LinearInterestRateModelV3"], 8_000, 9_000, 0, 400, 1_000, 10_000, False)
    pool = await d.deploy(art["PoolV3"], gov, gov, u.address, TREASURY, irm, 2**256 - 1,
                          f"Diesel {u.symbol}", f"d{u.symbol}")
    pqk = await d.deploy(art["PoolQuotaKeeperV3"], pool)
    await tx(pool, "PoolV3", "setPoolQuotaKeeper", pqk)
    tumbler = await d.deploy(art["TumblerV3"], pool, EPOCH_LENGTH)
    await tx(pqk, "PoolQuotaKeeperV3", "setGauge", tumbler)
    for s in lts:
        await tx(tumbler, "TumblerV3", "addToken", tokens[s].address)
        await tx(tumbler, "TumblerV3", "setRate", tokens[s].address, QUOTA_RATE)
    await tx(tumbler, "TumblerV3", "updateRates")
    for s in lts:
        await tx(pqk, "PoolQuotaKeeperV3", "setTokenLimit", tokens[s].address, QUOTA_LIMIT)
    await tx(gov, "GovStandIn", "addPool", pool)
    bot_list = await d.deploy(art["BotListV3"], gov)
    factory = await d.deploy(art["DefaultAccountFactoryV3"], gov)
    loss_policy = await d.deploy(art["AliasedLossPolicyV3"], pool, gov)
    cm = await d.deploy(art["CreditManagerV3"], pool, factory, oracle, MAX_ENABLED_TOKENS, FEE_INTEREST,
                        FEE_LIQUIDATION, LIQUIDATION_PREMIUM, FEE_LIQUIDATION_EXPIRED, LIQUIDATION_PREMIUM_EXPIRED,
                        f"{u.symbol} credit manager")
    facade = await d.deploy(art["CreditFacadeV3"], gov, cm, loss_policy, bot_list,
                            "0x" + "00" * 20, "0x" + "00" * 20, False)
    await tx(cm, "CreditManagerV3", "setCreditFacade", facade)
    cc = await d.deploy(art["CreditConfiguratorV3"], cm)
    await tx(cm, "CreditManagerV3", "setCreditConfigurator", cc)
    await tx(cc, "CreditConfiguratorV3", "setDebtLimits", u.units(min_debt), u.units(max_debt))
    for s, lt in lts.items():
        await tx(cc, "CreditConfiguratorV3", "addCollateralToken", tokens[s].address, lt)
    await tx(gov, "GovStandIn", "addCreditManager", cm)
    await tx(factory, "DefaultAccountFactoryV3", "addCreditManager", cm)
    await tx(pqk, "PoolQuotaKeeperV3", "addCreditManager", cm)
    await tx(pool, "PoolV3", "setCreditManagerDebtLimit", cm, CM_DEBT_LIMIT)
    assert me == d.sender
    return GearboxDeployment(gov=gov, pool=pool, irm=irm, pool_quota_keeper=pqk, tumbler=tumbler,
                             price_oracle=oracle, bot_list=bot_list, account_factory=factory,
                             loss_policy=loss_policy, credit_manager=cm, credit_facade=facade,
                             credit_configurator=cc, underlying=u, collaterals={s: tokens[s] for s in lts},
                             lts=lts, min_debt=u.units(min_debt), max_debt=u.units(max_debt), abis=abis)


async def deposit(d: Deployer, dep: GearboxDeployment, lender: str, amount: int) -> dict:
    """Mint ``amount`` underlying units to ``lender`` and deposit them in the pool (ERC4626)."""
    await mint(d, dep.underlying, lender, amount)
    await approve(d, dep.underlying, lender, dep.pool, amount)
    return await d.transact(dep.pool, dep.abis["PoolV3"], "deposit", amount, lender, sender=lender)


def _inner(d: Deployer, dep: GearboxDeployment, fn: str, *args) -> tuple[str, bytes]:
    """One MultiCall(target = facade, callData) of the facade's multicall (ICreditFacadeV3Multicall)."""
    c = d.at(dep.credit_facade, dep.abis["ICreditFacadeV3Multicall"])
    return (dep.credit_facade, bytes.fromhex(c.encode_abi(fn, list(args))[2:]))


def _event_args(d: Deployer, dep: GearboxDeployment, receipt: dict, contract: str, address: str,
                name: str) -> list[dict]:
    ev = d.at(address, dep.abis[contract]).events[name]()
    topic = ev.topic.removeprefix("0x")
    return [dict(ev.process_log(lg)["args"]) for lg in receipt["logs"]
            if lg["address"] == address and lg["topics"] and lg["topics"][0].hex().removeprefix("0x") == topic]


def facade_events(d: Deployer, dep: GearboxDeployment, receipt: dict, name: str) -> list[dict]:
    """Decoded ``name`` events the credit facade emitted in ``receipt``."""
    return _event_args(d, dep, receipt, "CreditFacadeV3", dep.credit_facade, name)


async def open_credit_account(d: Deployer, dep: GearboxDeployment, user: str, debt_usdc: float,
                              collateral: dict[str, float], quotas: dict[str, float] | None = None) -> str:
    """Open a credit account for ``user`` through the facade's multicall: borrow ``debt_usdc`` whole
    underlying, add ``collateral`` (symbol -> whole tokens, minted to the user), set ``quotas``
    (symbol -> whole underlying; only quoted value counts as collateral) and withdraw the borrowed
    underlying to the user, so the account holds the collateral against underlying debt.
    Returns the credit account's address."""
    u = dep.underlying
    debt = u.units(debt_usdc)
    calls = [_inner(d, dep, "increaseDebt", debt)]
    for sym, amount in collateral.items():
        t = dep.collaterals[sym]
        units = t.units(amount)
        await mint(d, t, user, units)
        await approve(d, t, user, dep.credit_manager, units)  # the CM pulls collateral, not the facade
        calls.append(_inner(d, dep, "addCollateral", t.address, units))
    for sym, q in (quotas or {}).items():
        calls.append(_inner(d, dep, "updateQuota", dep.collaterals[sym].address, u.units(q), 0))
    calls.append(_inner(d, dep, "withdrawCollateral", u.address, debt, user))
    rc = await d.transact(dep.credit_facade, dep.abis["CreditFacadeV3"], "openCreditAccount", user, calls, 0,
                          sender=user)
    (ev,) = facade_events(d, dep, rc, "OpenCreditAccount")
    return ev["creditAccount"]


@dataclass(frozen=True)
class AccountState:
    debt: int  # principal, underlying units
    total_debt: int  # debt + accrued interest + accrued fees
    total_debt_usd: int  # 8 decimals
    total_value: int  # underlying units
    total_value_usd: int
    twv_usd: int  # LT-weighted value, quota-capped
    liquidatable: bool  # isLiquidatable(ca, 10000)

    @property
    def hf(self) -> float | None:
        return self.twv_usd / self.total_debt_usd if self.total_debt_usd else None


async def account_state(d: Deployer, dep: GearboxDeployment, ca: str) -> AccountState:
    """calcDebtAndCollateral(ca, DEBT_COLLATERAL = 3) and isLiquidatable(ca, 10000) of the credit manager."""
    cm = d.at(dep.credit_manager, dep.abis["CreditManagerV3"])
    cdd = await cm.functions.calcDebtAndCollateral(ca, 3).call()
    liq = await cm.functions.isLiquidatable(ca, PERCENTAGE_FACTOR).call()
    debt, _, _, _, interest, fees, debt_usd, value, value_usd, twv_usd = cdd[:10]
    return AccountState(debt, debt + interest + fees, debt_usd, value, value_usd, twv_usd, liq)


async def math_account(d: Deployer, dep: GearboxDeployment, ca: str) -> gm.Account:
    """The account as gearbox_v3_math sees it, read with plain eth_calls (calcDebtAndCollateral,
    fees, oracle prices, LTs, balances, quotas): the keeper's inputs by another path."""
    cm = d.at(dep.credit_manager, dep.abis["CreditManagerV3"]).functions
    oracle = d.at(dep.price_oracle, dep.abis["PriceOracleV3"]).functions
    pqk = d.at(dep.pool_quota_keeper, dep.abis["PoolQuotaKeeperV3"]).functions
    cdd = await cm.calcDebtAndCollateral(ca, 3).call()
    fees = gm.Fees(*await cm.fees().call())
    (min_debt, _) = await d.call(dep.credit_facade, dep.abis["CreditFacadeV3"], "debtLimits")
    holdings = {}
    for t in [dep.underlying, *dep.collaterals.values()]:
        quota = None if t is dep.underlying else (await pqk.getQuota(ca, t.address).call())[0]
        holdings[t.address] = gm.Holding(t.address, await balance_of(d, t, ca),
                                         gm.Price(await oracle.getPrice(t.address).call(), 10**t.decimals),
                                         await cm.liquidationThresholds(t.address).call(), quota)
    return gm.Account(gm.Debt(*cdd[:6]), holdings, dep.underlying.address, fees, min_debt)


async def liquidate_fully(d: Deployer, dep: GearboxDeployment, ca: str, liquidator: str) -> dict:
    """liquidateCreditAccount(ca, liquidator, calls) the plain way (no adapter): add totalValue of
    underlying, withdraw every collateral to the liquidator. The account stays open with debt 0."""
    cdd = await d.at(dep.credit_manager, dep.abis["CreditManagerV3"]).functions.calcDebtAndCollateral(ca, 3).call()
    u = dep.underlying
    await mint(d, u, liquidator, cdd[7])
    await approve(d, u, liquidator, dep.credit_manager, cdd[7])
    calls = [_inner(d, dep, "addCollateral", u.address, cdd[7])]
    for t in dep.collaterals.values():
        if await balance_of(d, t, ca) > 1:
            calls.append(_inner(d, dep, "withdrawCollateral", t.address, 2**256 - 1, liquidator))
    fn = d.at(dep.credit_facade, dep.abis["CreditFacadeV3"]).get_function_by_signature(
        "liquidateCreditAccount(address,address,(address,bytes)[])")(ca, liquidator, calls)
    tx = {"from": liquidator, "to": dep.credit_facade, "data": fn._encode_transaction_data()}
    return await d._send(tx, "liquidateCreditAccount")


# Demo borrowers: (collateral in whole tokens, USDC debt, quotas in whole USDC). LTs WETH 85%, WBTC
# 80%; liquidation discount 96%, fee 1.5%; minDebt 1,000. After the demo's 30% WETH drop ($3,000 ->
# $2,100), twv = sum(min(value x LT, quota)):
GEARBOX_DEMO_POSITIONS: list[tuple[dict[str, float], int, dict[str, float]]] = [
    # twv 17,850 < 18,000 (HF 0.992): partial on WETH, down to minDebt.
    ({"WETH": 10}, 18_000, {"WETH": 25_500}),
    # twv 10,710 + 9,600 = 20,310 < 22,000 (HF 0.923): only seizing all the WBTC can restore HF >= 1
    # (seizing WETH lowers twv by 85/96 of each dollar repaid, WBTC by 80/96).
    ({"WETH": 6, "WBTC": 0.2}, 22_000, {"WETH": 15_300, "WBTC": 9_600}),
    # The WBTC quota (10,000) binds below its 24,000 of LT value: twv 8,925 + 10,000 = 18,925 < 21,000
    # (HF 0.901); WBTC can be seized at no cost in twv until its LT value falls to the quota.
    ({"WETH": 5, "WBTC": 0.5}, 21_000, {"WETH": 12_750, "WBTC": 10_000}),
    # Small: twv 1,785 < 1,850 (HF 0.965); the repayment is capped by minDebt.
    ({"WETH": 1}, 1_850, {"WETH": 2_550}),
    # Healthy, untouched by a WETH drop: twv 24,000 vs 15,000 (HF 1.6).
    ({"WBTC": 0.5}, 15_000, {"WBTC": 24_000}),
    # Bad debt: value 10,500 < debt 12,500 (HF 0.714): no partial size leaves HF >= 1.
    ({"WETH": 5}, 12_500, {"WETH": 12_750}),
]


async def add_gearbox_to_world(d: Deployer, world: "World", *, positions=GEARBOX_DEMO_POSITIONS,
                               lender_liquidity: int = 1_000_000, keeper_usdc: int = 0,
                               **deploy_kw) -> GearboxDeployment:
    """Deploy Gearbox V3 on the world's tokens (USDC pool; WETH, WBTC collateral), deposit
    ``lender_liquidity`` whole USDC from a lender, open ``positions`` (collateral, debt, quotas) from
    fresh accounts, mint ``keeper_usdc`` whole USDC to the keeper wallet, and register the market:
    extra["gearbox"], extra["gearbox_accounts"] (credit account addresses, in ``positions`` order),
    extra["gearbox_borrowers"], contracts and entries["gearbox_v3"]."""
    dep = await deploy_gearbox(d, world.tokens, **deploy_kw)
    lender, *users = world.take_accounts(1 + len(positions))
    await deposit(d, dep, lender, dep.underlying.units(lender_liquidity))
    accounts = []
    for user, (collateral, debt, quotas) in zip(users, positions):
        accounts.append(await open_credit_account(d, dep, user, debt, collateral, quotas))
    if keeper_usdc:
        await mint(d, dep.underlying, world.keeper_address, dep.underlying.units(keeper_usdc))
    world.extra["gearbox"] = dep
    world.extra["gearbox_accounts"] = accounts
    world.extra["gearbox_borrowers"] = users
    world.contracts["gearbox_v3"] = dep.code
    world.entries["gearbox_v3"] = gearbox_config_entry(dep)
    return dep


def gearbox_config_entry(dep: GearboxDeployment, *, name: str = "gearbox_v3", target_hf_margin_bps: int = 10,
                         start_block: int = 0) -> str:
    """The `[[protocols]]` TOML block that points the keeper at ``dep``."""
    return f"""
[[protocols]]
kind = "gearbox_v3"
name = "{name}"
credit_managers = ["{dep.credit_manager}"]
start_block = {start_block}
target_hf_margin_bps = {target_hf_margin_bps}
"""
