"""Base mainnet (chain id 8453, OP stack: every plan also pays the L1 data fee). Sources read on
2026-12-02:

- Aave V3 core market: npm @aave-dao/aave-address-book 4.68.1, src/AaveV3Base.sol; deployment block:
  aave/protocol-subgraphs config/base-v3.json (PoolAddressesProviderRegistryStartBlock).
- Compound III: compound-finance/comet deployments/base/<market>/roots.json ("comet"); deployment
  blocks: a third-party indexer's public Compound III market table (ethereum.COMET_BLOCK_SOURCE).
- Morpho Blue: npm @morpho-org/morpho-ts 2.8.0 lib/esm/addresses.js, ChainId.BaseMainnet.
- Chainlink feeds and token addresses: @aave-dao/aave-address-book 4.68.1, src/ChainlinkBase.sol and
  src/AaveV3Base.sol (AaveV3BaseAssets.*_UNDERLYING).
- Multicall3: mds1/multicall3 deployments.json. Pyth: Pyth docs, price-feeds/contract-addresses/evm.
- Left out: Gearbox V3 (not deployed on Base: Gearbox's SDK on GitHub lists no address provider
  there), Perennial V2 (not on Base).
"""
from keeper.presets import ChainPreset, Market, Omitted, Sourced
from keeper.presets.ethereum import COMET_BLOCK_SOURCE, gearbox_omitted

AAVE_BOOK = "npm @aave-dao/aave-address-book 4.68.1"
CHAINLINK = f"{AAVE_BOOK} src/ChainlinkBase.sol"
TOKENS = f"{AAVE_BOOK} src/AaveV3Base.sol AaveV3BaseAssets"
ETH_USD = "0x71041dddad3595F9CEd3DcCFBe3D1F4b0a16Bb70"


def comet(market: str, address: str, block: int) -> Market:
    return Market(kind="compound_v3", name=f"compound_v3_{market}",
                  fields={"comet": address, "start_block": block},
                  source=f"compound-finance/comet deployments/base/{market}/roots.json",
                  field_sources={"start_block": COMET_BLOCK_SOURCE})


PRESET = ChainPreset(
    chain="base",
    chain_id=8453,
    l2="op_stack",
    sourced_on="2026-12-02",
    multicall=Sourced("0xcA11bde05977b3631167028862bE2a173976CA11", "mds1/multicall3 deployments.json (Base, 8453)"),
    native_usd_feed=Sourced(ETH_USD, f"ETH / USD, {CHAINLINK} ETH__USD"),
    pyth=Sourced("0x8250f4aF4B972684F7b336503E2D6dFeDeB1487a", "Pyth docs, price-feeds/contract-addresses/evm (Base)"),
    # Base's L2 base fee is usually far below 0.1 gwei; the L1 data fee is added on top of this.
    max_gas_price_gwei="1",
    max_priority_fee_gwei="0.01",
    log_chunk_blocks=10_000,
    markets=(
        Market(kind="aave_v3", name="aave_v3_core",
               fields={"addresses_provider": "0xe20fCBdBfFC4Dd138cE8b2E6FBb6CB49777ad64D",
                       "start_block": 2357105, "close_factor_rules": "v3.3"},
               source=f"{AAVE_BOOK} src/AaveV3Base.sol POOL_ADDRESSES_PROVIDER",
               field_sources={
                   "start_block": "aave/protocol-subgraphs config/base-v3.json "
                                  "PoolAddressesProviderRegistryStartBlock (deployed before the market's "
                                  "provider and Pool, so no Pool log is older)",
                   "close_factor_rules": "Aave V3 markets run aave-v3-origin 3.3 or later"}),
        comet("usdc", "0xb125E6687d4313864e53df431d5425969c15Eb2F", 11699480),
        comet("weth", "0x46e6b214b524310239732D51387075E0e70970bf", 2495303),
        Market(kind="morpho_blue", name="morpho_blue",
               fields={"morpho": "0xBBBBBbbBBb9cC5e90e3b3Af64bdAF62C37EEFFCb", "start_block": 13977148,
                       "markets": [],
                       "usd_feeds": {
                           "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913": "0x7e860098F58bBFC8648a4311b374B1D669a2bc6B",
                           "0x4200000000000000000000000000000000000006": ETH_USD,
                       }},
               source="npm @morpho-org/morpho-ts 2.8.0 lib/esm/addresses.js ChainId.BaseMainnet (morpho, "
                      "and its deployment block)",
               field_sources={
                   "markets": "empty: every market from CreateMarket logs",
                   "usd_feeds": f"loan tokens USDC, WETH ({TOKENS}) -> USDC / USD, ETH / USD ({CHAINLINK}); "
                                f"markets lending other tokens are reported, not sent"}),
    ),
    omitted=(
        Omitted("gearbox_v3", gearbox_omitted("Base")),
        Omitted("perennial_v2", "Perennial V2 is not deployed on Base (its SDK lists Arbitrum only)"),
    ),
)
