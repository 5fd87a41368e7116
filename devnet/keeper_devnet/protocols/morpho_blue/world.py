"""The real Morpho Blue (@morpho-org/morpho-blue 1.0.0), compiled from the package's src/Morpho.sol with
the pinned solc 0.8.19 and Morpho's own settings (optimizer runs 999999, evm "paris", bytecodeHash
"none"), markets on the test tokens priced by ChainlinkPairOracle (contracts/test) over the tokens'
feeds, the package's IrmMock as the rate model, and user-action helpers.

Pipeline: legacy (via_ir=False) by default. Morpho's production build uses via-IR, but its own test
profile uses legacy, both builds behaved identically in every scenario checked, legacy compiles in
~2 s instead of ~9.6 s on a cold cache and its 22.5 KB runtime fits EIP-170.
``via_ir=True`` gives the production pipeline.

The 0.8.19 ABI of Morpho has no events (events emitted through a library only appear from 0.8.20),
so EventsLib's events are merged into the ABI returned here."""
from __future__ import annotations

from dataclasses import dataclass, field

from eth_abi import encode
from eth_utils import keccak

from keeper.protocols.morpho_blue.maths import Market
from keeper_devnet.deploy import Deployer
from keeper_devnet.solc import (
    Artifact,
    artifact,
    compile_contract,
    compile_standard_json,
)
from keeper_devnet.tokens import Token, approve, mint

MORPHO_CODE = "@morpho-org/morpho-blue@1.0.0"
_SRC = "@morpho-org/morpho-blue/src"
MORPHO_SOL, EVENTS_LIB, IRM_MOCK = f"{_SRC}/Morpho.sol", f"{_SRC}/libraries/EventsLib.sol", f"{_SRC}/mocks/IrmMock.sol"
ORACLE_SOL = "devnet/keeper_devnet/protocols/morpho_blue/ChainlinkPairOracle.sol"
UINT_MAX = 2**256 - 1

# (collateral, loan, lltv): LLTVs from the set Morpho governance enabled on mainnet.
DEFAULT_MARKETS: list[tuple[str, str, int]] = [
    ("WETH", "USDC", 860_000_000_000_000_000),
    ("WBTC", "USDC", 770_000_000_000_000_000),
    ("WBTC", "WETH", 915_000_000_000_000_000),
    ("WETH", "WBTC", 770_000_000_000_000_000),
]
# (market "collateral/loan", collateral, debt) in whole tokens. With WETH at $3,000, WBTC $60,000;
# after the demo's 30% WETH drop:
MORPHO_DEMO_POSITIONS: list[tuple[str, float, float]] = [
    ("WETH/USDC", 10, 20_000),  # LTV 0.95 > 0.86: liquidatable
    ("WETH/USDC", 10, 15_000),  # LTV 0.71: healthy
    ("WETH/USDC", 10, 24_000),  # LTV 1.14: the collateral cannot cover debt x LIF -> bad debt
    ("WETH/WBTC", 5, 0.15),  # LTV 0.86 > 0.77: liquidatable
    ("WBTC/USDC", 1, 30_000),  # LTV 0.50, untouched by the WETH drop
]


@dataclass
class MarketInfo:
    id: str  # bytes32, 0x-hex: keccak256(abi.encode(marketParams))
    loan: Token
    collateral: Token
    oracle: str
    irm: str
    lltv: int

    @property
    def params(self) -> tuple[str, str, str, str, int]:
        """MarketParams(loanToken, collateralToken, oracle, irm, lltv) as a tuple for the ABI."""
        return (self.loan.address, self.collateral.address, self.oracle, self.irm, self.lltv)


@dataclass
class MorphoDeployment:
    morpho: str
    irm: str
    markets: dict[str, MarketInfo]  # "WETH/USDC" (collateral/loan) -> market
    code: str = MORPHO_CODE
    extra: dict[str, str] = field(default_factory=dict)  # owner, ...


@dataclass(frozen=True)
class Position:
    supply_shares: int
    borrow_shares: int
    collateral: int


def market_id(params: tuple) -> str:
    """Id = keccak256(abi.encode(MarketParams)) (MarketParamsLib.id)."""
    return "0x" + keccak(encode(["address", "address", "address", "address", "uint256"], list(params))).hex()


_compiled: dict[bool, tuple[Artifact, Artifact]] = {}


async def morpho_artifacts(via_ir: bool = False) -> tuple[Artifact, Artifact]:
    """(Morpho with EventsLib's events merged into its ABI, IrmMock), both from the package sources."""
    if via_ir not in _compiled:
        out = await compile_standard_json([MORPHO_SOL, EVENTS_LIB, IRM_MOCK], compiler="solc_0_8_19",
                                          optimizer_runs=999999, evm_version="paris", via_ir=via_ir,
                                          bytecode_hash="none")
        morpho, events = artifact(out, MORPHO_SOL, "Morpho"), artifact(out, EVENTS_LIB, "EventsLib")
        abi = morpho.abi + [e for e in events.abi if e["type"] == "event"]
        merged = Artifact(morpho.name, abi, morpho.bytecode, morpho.deployed_bytecode, morpho.link_references)
        _compiled[via_ir] = (merged, artifact(out, IRM_MOCK, "IrmMock"))
    return _compiled[via_ir]


async def morpho_abi() -> list:
    return (await morpho_artifacts())[0].abi


async def oracle_artifact() -> Artifact:
    return await compile_contract(ORACLE_SOL, "ChainlinkPairOracle")


async def deploy_morpho_blue(d: Deployer, tokens: dict[str, Token],
                             markets: list[tuple[str, str, int]] = DEFAULT_MARKETS, *,
                             via_ir: bool = False, owner: str | None = None) -> MorphoDeployment:
    """Morpho(owner); enableIrm(IrmMock); per market: an oracle over the two tokens' feeds,
    enableLltv (once per value) and createMarket. Ids are read back from the CreateMarket events."""
    owner = owner or d.sender
    morpho_art, irm_art = await morpho_artifacts(via_ir)
    morpho = await d.deploy(morpho_art, owner)
    irm = await d.deploy(irm_art)
    abi = morpho_art.abi
    await d.transact(morpho, abi, "enableIrm", irm, sender=owner)
    oracle_art = await oracle_artifact()
    enabled: set[int] = set()
    infos: dict[str, MarketInfo] = {}
    for coll_sym, loan_sym, lltv in markets:
        coll, loan = tokens[coll_sym], tokens[loan_sym]
        lltv = int(lltv)
        oracle = await d.deploy(oracle_art, coll.feed, loan.feed, coll.decimals, loan.decimals)
        if lltv not in enabled:
            await d.transact(morpho, abi, "enableLltv", lltv, sender=owner)
            enabled.add(lltv)
        receipt = await d.transact(morpho, abi, "createMarket", (loan.address, coll.address, oracle, irm, lltv))
        [created] = decode_events(d, morpho, abi, receipt, "CreateMarket")
        infos[f"{coll_sym}/{loan_sym}"] = MarketInfo("0x" + bytes(created["id"]).hex(), loan, coll, oracle, irm, lltv)
    return MorphoDeployment(morpho, irm, infos, extra={"owner": owner})


def decode_events(d: Deployer, address: str, abi: list, receipt: dict, name: str) -> list[dict]:
    event = d.at(address, abi).events[name]()
    topic = bytes.fromhex(event.topic.removeprefix("0x"))
    return [dict(event.process_log(lg)["args"]) for lg in receipt["logs"]
            if lg["address"].lower() == address.lower() and lg["topics"] and bytes(lg["topics"][0]) == topic]


async def events(d: Deployer, dep: MorphoDeployment, receipt: dict, name: str) -> list[dict]:
    """Morpho's ``name`` events in ``receipt``, decoded with the merged ABI."""
    return decode_events(d, dep.morpho, await morpho_abi(), receipt, name)


# --- user actions (set-up and tests; each waits for its receipt) ---

async def supply(d: Deployer, dep: MorphoDeployment, m: MarketInfo, lender: str, assets: int,
                 *, fund: bool = True) -> dict:
    """Supply ``assets`` of the loan token for ``lender`` (minted to them first when ``fund``)."""
    if fund:
        await mint(d, m.loan, lender, assets)
    await approve(d, m.loan, lender, dep.morpho, assets)
    return await d.transact(dep.morpho, await morpho_abi(), "supply", m.params, assets, 0, lender, b"",
                            sender=lender)


async def supply_collateral(d: Deployer, dep: MorphoDeployment, m: MarketInfo, borrower: str, assets: int,
                            *, fund: bool = True) -> dict:
    if fund:
        await mint(d, m.collateral, borrower, assets)
    await approve(d, m.collateral, borrower, dep.morpho, assets)
    return await d.transact(dep.morpho, await morpho_abi(), "supplyCollateral", m.params, assets, borrower, b"",
                            sender=borrower)


async def borrow(d: Deployer, dep: MorphoDeployment, m: MarketInfo, borrower: str, assets: int,
                 receiver: str | None = None) -> dict:
    return await d.transact(dep.morpho, await morpho_abi(), "borrow", m.params, assets, 0, borrower,
                            receiver or borrower, sender=borrower)


async def liquidate(d: Deployer, dep: MorphoDeployment, m: MarketInfo, liquidator: str, borrower: str, *,
                    seized_assets: int = 0, repaid_shares: int = 0, data: bytes = b"",
                    approve_loan: bool = True) -> dict:
    """Morpho.liquidate from ``liquidator`` (exactly one of seized_assets / repaid_shares non-zero);
    returns the Liquidate event's arguments. The liquidator must hold the loan tokens to repay."""
    if approve_loan:
        await approve(d, m.loan, liquidator, dep.morpho, UINT_MAX)
    receipt = await d.transact(dep.morpho, await morpho_abi(), "liquidate", m.params, borrower, seized_assets,
                               repaid_shares, data, sender=liquidator)
    [event] = await events(d, dep, receipt, "Liquidate")
    return event | {"receipt": receipt}


async def accrue_interest(d: Deployer, dep: MorphoDeployment, m: MarketInfo) -> dict:
    return await d.transact(dep.morpho, await morpho_abi(), "accrueInterest", m.params)


async def position(d: Deployer, dep: MorphoDeployment, m: MarketInfo, user: str) -> Position:
    return Position(*await d.call(dep.morpho, await morpho_abi(), "position", m.id, user))


async def market(d: Deployer, dep: MorphoDeployment, m: MarketInfo) -> Market:
    """The stored market (interest accrued up to its lastUpdate only)."""
    return Market(*await d.call(dep.morpho, await morpho_abi(), "market", m.id))


async def oracle_price(d: Deployer, m: MarketInfo) -> int:
    return await d.call(m.oracle, (await oracle_artifact()).abi, "price")


async def borrow_rate_view(d: Deployer, m: MarketInfo, state: Market) -> int:
    """The IRM's per-second borrow rate (WAD) for ``state``."""
    irm_abi = (await morpho_artifacts())[1].abi
    s = state
    return await d.call(m.irm, irm_abi, "borrowRateView", m.params,
                        (s.total_supply_assets, s.total_supply_shares, s.total_borrow_assets,
                         s.total_borrow_shares, s.last_update, s.fee))


async def open_morpho_position(d: Deployer, dep: MorphoDeployment, user: str, key: str, collateral: float,
                               debt: float) -> None:
    """Supply ``collateral`` whole tokens to market ``key`` ("collateral/loan"), then borrow ``debt``."""
    m = dep.markets[key]
    await supply_collateral(d, dep, m, user, m.collateral.units(collateral))
    await borrow(d, dep, m, user, m.loan.units(debt))


async def add_morpho_to_world(d: Deployer, world, *, positions=MORPHO_DEMO_POSITIONS,
                              lender_liquidity_usd: int = 1_000_000) -> MorphoDeployment:
    """Deploy the real Morpho Blue on the world's tokens with DEFAULT_MARKETS, supply
    ``lender_liquidity_usd`` of loan tokens to every market from a lender, open ``positions`` from
    fresh accounts and register it in the world: extra["morpho"], extra["morpho_borrowers"],
    contracts and entries["morpho_blue"]."""
    dep = await deploy_morpho_blue(d, world.tokens)
    lender, *users = world.take_accounts(1 + len(positions))
    for m in dep.markets.values():
        await supply(d, dep, m, lender, m.loan.units(lender_liquidity_usd / (m.loan.price / 1e8)))
    for user, (key, collateral, debt) in zip(users, positions):
        await open_morpho_position(d, dep, user, key, collateral, debt)
    world.extra["morpho"] = dep
    world.extra["morpho_borrowers"] = users
    world.contracts["morpho_blue"] = dep.code
    world.entries["morpho_blue"] = morpho_config_entry(dep, world.tokens)
    return dep


def morpho_config_entry(dep: MorphoDeployment, tokens: dict[str, Token], *, name: str = "morpho_blue",
                        markets: list[str] | None = None) -> str:
    """The `[[protocols]]` TOML block for ``dep``: the listed market ids (default: discovered from
    CreateMarket logs) and a USD feed for every token."""
    ids = "" if markets is None else "markets = [" + ", ".join(f'"{dep.markets[k].id}"' for k in markets) + "]\n"
    feeds = ", ".join(f'"{t.address}" = "{t.feed}"' for t in tokens.values())
    return f"""
[[protocols]]
kind = "morpho_blue"
name = "{name}"
morpho = "{dep.morpho}"
start_block = 0
{ids}usd_feeds = {{ {feeds} }}
"""
