"""Gearbox V3 (the real @gearbox-protocol/core-v3 1.52.1 contracts, version 3_10) in the local world.

Compiled from node_modules with Gearbox's own settings (solc 0.8.23, evm shanghai, optimizer 1000 runs,
bytecode hash none) in one standard-JSON job; `@openzeppelin/contracts` is remapped to `oz4` (the
OpenZeppelin 4.9.6 the repo pins, installed under an npm alias). The governance trio the package does
not publish (ACL, ContractsRegister, AddressProvider, plus the price feed store) is
contracts/gearbox/GovStandIn.sol. Deployment order and parameters follow
shared/real_contracts_gearbox.md section 4: one USDC pool, WETH and WBTC as quoted collateral priced
by the world's own Chainlink mock feeds, one credit manager with its facade and configurator.

Pull feeds: ``deploy_gearbox(..., pyth_feeds={symbol: feed id}, pyth=MockPyth)`` prices those tokens
with Gearbox's own PythPriceFeed (@gearbox-protocol/oracles-v3 1.16.0, same compiler settings) over
Pyth's MockPyth, so the oracle's price is whatever Pyth last stored and a liquidator must pass
on-demand price updates (``updatePrice(abi.encode(publishTime, [blob]))``, applied by the price feed
store). MockPyth lacks the real Pyth's ``latestPriceInfoPublishTime`` that the feed calls, so the
feed's ``pyth`` is contracts/gearbox/MockPythPublishTime.sol, a forwarder over the same MockPyth.
add_gearbox_to_world puts WETH on such a feed (the world's [pull_oracle] MockPyth and WETH feed id).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eth_abi import encode as abi_encode
from eth_utils import to_checksum_address

from keeper.abi import load
from keeper.chain.multicall import (
    MULTICALL3,
    Call,
    CallFailed,
    decode_aggregate3,
    encode_aggregate3,
)
from keeper.protocols.gearbox_v3 import maths as gm
from keeper_devnet.deploy import Deployer
from keeper_devnet.pyth import deploy_mock_pyth, price_update_data, update_price_feeds
from keeper_devnet.solc import Artifact, artifact, compile_standard_json
from keeper_devnet.tokens import Token, approve, balance_of, mint

if TYPE_CHECKING:
    from keeper_devnet.world import World

GEARBOX_CODE = "@gearbox-protocol/core-v3@1.52.1"
_G = "@gearbox-protocol/core-v3/contracts"
GOV_SOURCE = "devnet/keeper_devnet/protocols/gearbox_v3/GovStandIn.sol"
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
# The package's governance interfaces (compiled with GovStandIn, which implements them): the keeper
# finds the credit managers through them (AddressProviderV3 -> CONTRACTS_REGISTER -> getCreditManagers).
GOV_IFACES = {"IAddressProvider": f"{_G}/interfaces/base/IAddressProvider.sol",
              "IContractsRegister": f"{_G}/interfaces/base/IContractsRegister.sol"}
COMPILE_SETTINGS = dict(compiler="solc_0_8_23", optimizer_runs=1000, evm_version="shanghai", bytecode_hash="none",
                        remappings=["@openzeppelin/contracts/=oz4/"])

# Gearbox's Pyth feed, and the forwarder that gives MockPyth the real Pyth's latestPriceInfoPublishTime.
PYTH_FEED_CODE = "@gearbox-protocol/oracles-v3@1.16.0"
PYTH_CONTRACTS = {
    "PythPriceFeed": "@gearbox-protocol/oracles-v3/contracts/oracles/updatable/PythPriceFeed.sol",
    "MockPythPublishTime": "devnet/keeper_devnet/protocols/gearbox_v3/MockPythPublishTime.sol",
}
PYTH_COMPILE_SETTINGS = dict(COMPILE_SETTINGS, remappings=["@solady/=solady/src/", "@openzeppelin/contracts/=oz4/"])
# PythPriceFeed.latestRoundData reverts once Pyth's publish time is more than
# MAX_DATA_TIMESTAMP_DELAY_SECONDS (10 minutes) behind the block, and it is not skipPriceCheck, so
# PriceOracleV3 wants a non-zero staleness period: the same 10 minutes (a longer one changes nothing).
PYTH_STALENESS_PERIOD = 600
PYTH_MAX_CONF_TO_PRICE_RATIO = 100  # bps: conf <= 1% of the price (the constructor refuses 0)
PYTH_FEED_FUNDING = 10**16  # wei held by each feed: it pays Pyth's update fee itself (MockPyth: 1 wei)
WETH_USD_FEED_ID = "0xff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace"  # Pyth ETH/USD

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

async def compile_gearbox() -> dict:
    """The standard-JSON output of the one compile job (cached by keeper_devnet.solc)."""
    return await compile_standard_json(list(CONTRACTS.values()), **COMPILE_SETTINGS)


async def gearbox_abis() -> dict[str, list]:
    out = await compile_gearbox()
    abis = {name: out["contracts"][src][name]["abi"] for name, src in CONTRACTS.items()}
    for name, src in [MULTICALL_IFACE, *GOV_IFACES.items()]:
        abis[name] = out["contracts"][src][name]["abi"]
    return abis


async def compile_pyth_feed() -> dict:
    """PythPriceFeed and the MockPyth forwarder in one job with Gearbox's settings (cached by keeper_devnet.solc)."""
    return await compile_standard_json(list(PYTH_CONTRACTS.values()), **PYTH_COMPILE_SETTINGS)


async def pyth_artifacts() -> dict[str, Artifact]:
    out = await compile_pyth_feed()
    return {name: artifact(out, src, name) for name, src in PYTH_CONTRACTS.items()}


async def all_errors() -> list[dict]:
    """Every custom error declared in the compile jobs (facade reverts may come from the credit
    manager, the oracle, the pool, 1inch's SafeERC20 or an updatable price feed such as
    PythPriceFeed), deduplicated by signature."""
    outs = [await compile_gearbox(), await compile_pyth_feed()]
    seen: dict[str, dict] = {}
    for units in (u for out in outs for u in out["contracts"].values()):
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
    price_feeds: dict[str, str] = field(default_factory=dict)  # symbol -> main (= reserve) price feed
    pyth: str | None = None  # the MockPyth the Pyth feeds read
    pyth_forwarder: str | None = None  # MockPythPublishTime over it (the feeds' `pyth`)
    pyth_feed_ids: dict[str, str] = field(default_factory=dict)  # symbol -> Pyth feed id (PythPriceFeed)

    def token(self, symbol: str) -> Token:
        return self.underlying if symbol == self.underlying.symbol else self.collaterals[symbol]

    @property
    def pyth_price_feeds(self) -> dict[str, str]:
        """symbol -> PythPriceFeed address."""
        return {s: self.price_feeds[s] for s in self.pyth_feed_ids}


async def deploy_gearbox(d: Deployer, tokens: dict[str, Token], *, underlying: str = "USDC",
                         lts: dict[str, int] | None = None, min_debt: int = MIN_DEBT,
                         max_debt: int = MAX_DEBT, pyth_feeds: dict[str, str] | None = None,
                         pyth: str | None = None) -> GearboxDeployment:
    """One Gearbox V3 market on ``tokens``: a ``underlying`` pool and a credit manager taking the
    ``lts`` tokens (symbol -> LT in bps) as quoted collateral. Debt limits in whole underlying.
    Tokens in ``pyth_feeds`` (symbol -> Pyth feed id) are priced by a PythPriceFeed over the MockPyth
    ``pyth`` (funded for Pyth's fee, seeded at the token's world price, registered as updatable in
    the price feed store); the others by their Chainlink mock feed."""
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
    pyth_feeds = dict(pyth_feeds or {})
    feeds = {s: tokens[s].feed for s in [underlying, *lts]}
    periods = {s: STALENESS_PERIOD for s in feeds}
    forwarder = None
    if pyth_feeds:
        if pyth is None:
            raise ValueError("pyth_feeds needs the MockPyth address (pyth=...)")
        part = await pyth_artifacts()
        abis["PythPriceFeed"] = part["PythPriceFeed"].abi
        forwarder = await d.deploy(part["MockPythPublishTime"], pyth)
        for s, feed_id in pyth_feeds.items():
            t = tokens[s]
            feed = await d.deploy(part["PythPriceFeed"], t.address, bytes.fromhex(feed_id.removeprefix("0x")),
                                  forwarder, PYTH_MAX_CONF_TO_PRICE_RATIO, f"{s}/USD")
            await d._send({"to": feed, "value": PYTH_FEED_FUNDING}, f"fund PythPriceFeed {s}")
            await push_pyth_price(d, pyth, feed_id, t.price)
            await tx(gov, "GovStandIn", "addUpdatablePriceFeed", feed)
            feeds[s], periods[s] = feed, PYTH_STALENESS_PERIOD
    for s, feed in feeds.items():
        t = tokens[s]
        await tx(oracle, "PriceOracleV3", "setPriceFeed", t.address, feed, periods[s])
        await tx(oracle, "PriceOracleV3", "setReservePriceFeed", t.address, feed, periods[s])
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
                             lts=lts, min_debt=u.units(min_debt), max_debt=u.units(max_debt), abis=abis,
                             price_feeds=feeds, pyth=pyth if pyth_feeds else None, pyth_forwarder=forwarder,
                             pyth_feed_ids=pyth_feeds)


# ---- Pyth prices and on-demand updates ----------------------------------------------------------------

async def latest_timestamp(d: Deployer) -> int:
    return (await d.w3.eth.get_block("latest"))["timestamp"]


async def push_pyth_price(d: Deployer, pyth: str, feed_id: str, price_8: int, publish_time: int | None = None) -> dict:
    """Store a Pyth price on MockPyth directly (published at the latest block's timestamp by default;
    MockPyth ignores an update no newer than the stored one)."""
    now = await latest_timestamp(d) if publish_time is None else publish_time
    blob = await price_update_data(d, pyth, feed_id, price_8, 0, -8, now)
    return await update_price_feeds(d, pyth, [blob])


_AGGREGATOR = [{"type": "function", "name": "latestRoundData", "stateMutability": "view", "inputs": [],
                "outputs": [{"name": n, "type": t} for n, t in [("roundId", "uint80"), ("answer", "int256"),
                            ("startedAt", "uint256"), ("updatedAt", "uint256"), ("answeredInRound", "uint80")]]}]


def price_update_payload(publish_time: int, blobs: list[bytes]) -> bytes:
    """PythPriceFeed.updatePrice's data: abi.encode(uint256 expectedPublishTimestamp, bytes[] updateData)."""
    return abi_encode(["uint256", "bytes[]"], [publish_time, blobs])


async def price_updates(d: Deployer, dep: GearboxDeployment, prices: dict[str, int] | None = None,
                        publish_time: int | None = None) -> list[tuple[str, bytes]]:
    """The facade's ``priceUpdates`` for every Pyth feed of ``dep``: MockPyth update data at
    ``prices`` (symbol -> 8 decimals; default: the token's Chainlink mock now, as the keeper's devnet
    pull oracle prices them), published at the latest block's timestamp."""
    now = await latest_timestamp(d) if publish_time is None else publish_time
    out = []
    for s, feed_id in dep.pyth_feed_ids.items():
        price = (prices or {}).get(s)
        if price is None:
            price = (await d.call(dep.token(s).feed, _AGGREGATOR, "latestRoundData"))[1]
        blob = await price_update_data(d, dep.pyth, feed_id, price, 0, -8, now)
        out.append((dep.price_feeds[s], price_update_payload(now, [blob])))
    return out


async def fresh_reads(d: Deployer, dep: GearboxDeployment, calls: list[Call],
                      updates: list[tuple[str, bytes]] | None = None) -> list:
    """Decoded results of ``calls`` as the facade sees the chain after its on-demand price updates:
    one Multicall3 eth_call whose first calls are each Pyth feed's updatePrice (``updates``, default
    price_updates(d, dep)). Plain eth_calls when ``dep`` has no Pyth feed. Raises on any failure."""
    if updates is None:
        updates = await price_updates(d, dep) if dep.pyth_feed_ids else []
    if not updates:
        out = []
        for c in calls:
            raw = await d.w3.eth.call({"to": c.target, "data": "0x" + c.data.hex()})
            out.append(c.decode(bytes(raw)) if c.decode else bytes(raw))
        return out
    if not await d.w3.eth.get_code(MULTICALL3):
        from keeper_devnet.multicall3 import install_multicall3
        await install_multicall3(d)
    upd = load("gearbox_v3/gearbox_pyth_price_feed").fn("updatePrice")
    batch = [Call(feed, upd.encode(data)) for feed, data in updates] + list(calls)
    raw = await d.w3.eth.call({"to": MULTICALL3, "data": "0x" + encode_aggregate3(batch).hex()})
    res = decode_aggregate3(batch, bytes(raw))
    failed = [(c.target, c.data[:4].hex(), r) for c, r in zip(batch, res) if isinstance(r, CallFailed)]
    if failed:
        raise RuntimeError(f"fresh read failed: {failed}")
    return res[len(updates):]


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


_CM = load("gearbox_v3/gearbox_credit_manager_v3")
_ORACLE = load("gearbox_v3/gearbox_price_oracle_v3")
_PQK = load("gearbox_v3/gearbox_pool_quota_keeper_v3")
_FACADE = load("gearbox_v3/gearbox_credit_facade_v3")
_ERC20 = load("ERC20")


def _call(target: str, abi, fn: str, *args) -> Call:
    f = abi.fn(fn)
    return Call(target, f.encode(*args), f.decode)


async def account_state(d: Deployer, dep: GearboxDeployment, ca: str,
                        updates: list[tuple[str, bytes]] | None = None) -> AccountState:
    """calcDebtAndCollateral(ca, DEBT_COLLATERAL = 3) and isLiquidatable(ca, 10000) of the credit
    manager, after the Pyth feeds' on-demand updates (fresh_reads) when the market has any."""
    cdd, liq = await fresh_reads(d, dep, [_call(dep.credit_manager, _CM, "calcDebtAndCollateral", ca, 3),
                                          _call(dep.credit_manager, _CM, "isLiquidatable", ca, PERCENTAGE_FACTOR)],
                                 updates)
    debt, _, _, _, interest, fees, debt_usd, value, value_usd, twv_usd = cdd[:10]
    return AccountState(debt, debt + interest + fees, debt_usd, value, value_usd, twv_usd, liq)


async def math_account(d: Deployer, dep: GearboxDeployment, ca: str,
                       updates: list[tuple[str, bytes]] | None = None) -> gm.Account:
    """The account as gearbox_v3_math sees it, read call by call (calcDebtAndCollateral, fees,
    oracle prices, LTs, balances, quotas; after the Pyth updates when the market has Pyth feeds):
    the keeper's inputs by another path."""
    toks = [dep.underlying, *dep.collaterals.values()]
    calls = [_call(dep.credit_manager, _CM, "calcDebtAndCollateral", ca, 3), _call(dep.credit_manager, _CM, "fees"),
             _call(dep.credit_facade, _FACADE, "debtLimits")]
    for t in toks:
        calls += [_call(t.address, _ERC20, "balanceOf", ca), _call(dep.price_oracle, _ORACLE, "getPrice", t.address),
                  _call(dep.credit_manager, _CM, "liquidationThresholds", t.address)]
        if t is not dep.underlying:
            calls.append(_call(dep.pool_quota_keeper, _PQK, "getQuota", ca, t.address))
    res = iter(await fresh_reads(d, dep, calls, updates))
    cdd, fees, (min_debt, _) = next(res), gm.Fees(*next(res)), next(res)
    holdings = {}
    for t in toks:
        bal, price, lt = next(res), next(res), next(res)
        quota = None if t is dep.underlying else next(res)[0]
        holdings[t.address] = gm.Holding(t.address, bal, gm.Price(price, 10**t.decimals), lt, quota)
    return gm.Account(gm.Debt(*cdd[:6]), holdings, dep.underlying.address, fees, min_debt)


async def liquidate_fully(d: Deployer, dep: GearboxDeployment, ca: str, liquidator: str) -> dict:
    """liquidateCreditAccount(ca, liquidator, calls) the plain way (no adapter): add totalValue of
    underlying, withdraw every collateral to the liquidator. The account stays open with debt 0.
    With Pyth feeds, calls[0] is onDemandPriceUpdates(price_updates(d, dep)) (the facade applies it
    before its checks) and totalValue is read at those prices."""
    updates = await price_updates(d, dep) if dep.pyth_feed_ids else []
    (cdd,) = await fresh_reads(d, dep, [_call(dep.credit_manager, _CM, "calcDebtAndCollateral", ca, 3)], updates)
    u = dep.underlying
    await mint(d, u, liquidator, cdd[7])
    await approve(d, u, liquidator, dep.credit_manager, cdd[7])
    calls = [_inner(d, dep, "onDemandPriceUpdates", updates)] if updates else []
    calls.append(_inner(d, dep, "addCollateral", u.address, cdd[7]))
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
    # Small: twv 3,570 < 3,700 (HF 0.965); the repayment is capped by minDebt. (At 1 WETH its
    # ~$35 gain would be within gas noise: a block's later Gearbox plans are simulated before the
    # first one's Pyth update is mined, so their predicted gas can include that update, ~85-90k.)
    ({"WETH": 2}, 3_700, {"WETH": 5_100}),
    # Healthy, untouched by a WETH drop: twv 24,000 vs 15,000 (HF 1.6).
    ({"WBTC": 0.5}, 15_000, {"WBTC": 24_000}),
    # Bad debt: value 10,500 < debt 12,500 (HF 0.714): no partial size leaves HF >= 1.
    ({"WETH": 5}, 12_500, {"WETH": 12_750}),
]


async def add_gearbox_to_world(d: Deployer, world: World, *, positions=GEARBOX_DEMO_POSITIONS,
                               lender_liquidity: int = 1_000_000, keeper_usdc: int = 0, pyth_weth: bool = True,
                               **deploy_kw) -> GearboxDeployment:
    """Deploy Gearbox V3 on the world's tokens (USDC pool; WETH, WBTC collateral), WETH priced by
    Gearbox's PythPriceFeed (unless ``pyth_weth`` is False: the Chainlink mock then): on the world's
    MockPyth and WETH feed id when Perennial already set up [pull_oracle], else on a new MockPyth
    with a [pull_oracle] table of its own (mock_feeds: the WETH feed id -> WETH's Chainlink mock). Deposit
    ``lender_liquidity`` whole USDC from a lender, open ``positions`` (collateral, debt, quotas) from
    fresh accounts, mint ``keeper_usdc`` whole USDC to the keeper wallet, and register the market:
    extra["gearbox"], extra["gearbox_accounts"] (credit account addresses, in ``positions`` order),
    extra["gearbox_borrowers"], contracts and entries["gearbox_v3"] (and sections["pull_oracle"])."""
    if pyth_weth:
        per = world.extra.get("perennial")
        if per is not None and "pull_oracle" in world.sections:
            pyth, feed_id = per.pyth, per.feed_id  # type: ignore[attr-defined]
        else:
            pyth, feed_id = await deploy_mock_pyth(d, valid_time_period=60, fee_wei=1), WETH_USD_FEED_ID
            world.sections["pull_oracle"] = pull_oracle_section(pyth, {feed_id: world.tokens["WETH"].feed})
        deploy_kw = {"pyth_feeds": {"WETH": feed_id}, "pyth": pyth, **deploy_kw}
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
    world.contracts["gearbox_v3"] = dep.code  # (the WETH feed: PYTH_FEED_CODE's PythPriceFeed)
    world.entries["gearbox_v3"] = gearbox_config_entry(dep)
    return dep


def pull_oracle_section(mock_pyth: str, mock_feeds: dict[str, str]) -> str:
    """A [pull_oracle] table for the devnet pull oracle (the format of keeper/devnet/perennial.py's)."""
    feeds = "".join(f'"{k}" = "{v}"\n' for k, v in mock_feeds.items())
    return f"""
[pull_oracle]
source = "mock_pyth"
mock_pyth = "{mock_pyth}"

[pull_oracle.mock_feeds]
{feeds}"""


def gearbox_config_entry(dep: GearboxDeployment, *, name: str = "gearbox_v3", target_hf_margin_bps: int = 10,
                         start_block: int = 0, full_liquidation: bool = True, address_provider: bool = False) -> str:
    """The `[[protocols]]` TOML block that points the keeper at ``dep``: its credit manager, or with
    ``address_provider`` only the address provider (GovStandIn) it finds the credit managers from."""
    source = f'address_provider = "{dep.gov}"' if address_provider else f'credit_managers = ["{dep.credit_manager}"]'
    return f"""
[[protocols]]
kind = "gearbox_v3"
name = "{name}"
{source}
start_block = {start_block}
target_hf_margin_bps = {target_hf_margin_bps}
full_liquidation = {str(full_liquidation).lower()}
"""
