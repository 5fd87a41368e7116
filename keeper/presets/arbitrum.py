"""Arbitrum One (chain id 42161: the L1 component is charged as extra L2 gas). Sources read on
2026-12-02:

- Aave V3 core market: npm @aave-dao/aave-address-book 4.68.1, src/AaveV3Arbitrum.sol; deployment
  block: aave/protocol-subgraphs config/arbitrum-v3.json (PoolAddressesProviderRegistryStartBlock).
- Compound III: compound-finance/comet deployments/arbitrum/<market>/roots.json ("comet"); deployment
  blocks: a third-party indexer's public Compound III market table (ethereum.COMET_BLOCK_SOURCE).
- Morpho Blue: npm @morpho-org/morpho-ts 2.8.0 lib/esm/addresses.js, ChainId.ArbitrumMainnet.
- Perennial V2: npm @perennial/sdk 0.0.3-beta.6 dist/constants/contracts.js (MarketFactory) and
  dist/constants/network.js (Hermes URL); deployment block: equilibria-xyz/perennial-v2
  packages/deploy/deployments/arbitrum/ProxyAdmin.json receipt.blockNumber.
- Chainlink feeds and token addresses: @aave-dao/aave-address-book 4.68.1, src/ChainlinkArbitrum.sol
  and src/AaveV3Arbitrum.sol (AaveV3ArbitrumAssets.*_UNDERLYING).
- Multicall3: mds1/multicall3 deployments.json. Pyth: Pyth docs, price-feeds/contract-addresses/evm.
- Gearbox V3: Gearbox-protocol/sdk on GitHub, src/sdk/constants/address-provider.ts (the
  AddressProviderV3, the credit managers then listed on chain) and networks.ts ADDRESS_PROVIDER_BLOCK.
"""
from keeper.presets import ChainPreset, Market, Sourced
from keeper.presets.ethereum import COMET_BLOCK_SOURCE, gearbox

AAVE_BOOK = "npm @aave-dao/aave-address-book 4.68.1"
CHAINLINK = f"{AAVE_BOOK} src/ChainlinkArbitrum.sol"
TOKENS = f"{AAVE_BOOK} src/AaveV3Arbitrum.sol AaveV3ArbitrumAssets"
ETH_USD = "0x639Fe6ab55C921f74e7fac1ee960C0B6293ba612"
PERENNIAL_SDK = "npm @perennial/sdk 0.0.3-beta.6"


def comet(market: str, address: str, block: int) -> Market:
    return Market(kind="compound_v3", name=f"compound_v3_{market}",
                  fields={"comet": address, "start_block": block},
                  source=f"compound-finance/comet deployments/arbitrum/{market}/roots.json",
                  field_sources={"start_block": COMET_BLOCK_SOURCE})


PRESET = ChainPreset(
    chain="arbitrum",
    chain_id=42161,
    l2="arbitrum",
    sourced_on="2026-12-02",
    multicall=Sourced("0xcA11bde05977b3631167028862bE2a173976CA11",
                      "mds1/multicall3 deployments.json (Arbitrum, 42161)"),
    native_usd_feed=Sourced(ETH_USD, f"ETH / USD, {CHAINLINK} ETH__USD"),
    pyth=Sourced("0xff1a0f4744e8582DF1aE09D5611b887B6a12925C",
                 "Pyth docs, price-feeds/contract-addresses/evm (Arbitrum)"),
    hermes_url=Sourced("https://hermes.pyth.network", f"{PERENNIAL_SDK} dist/constants/network.js"),
    # Arbitrum's base fee is usually 0.01 gwei; it pays no priority fee.
    max_gas_price_gwei="1",
    max_priority_fee_gwei="0",
    log_chunk_blocks=50_000,
    markets=(
        Market(kind="aave_v3", name="aave_v3_core",
               fields={"addresses_provider": "0xa97684ead0e402dC232d5A977953DF7ECBaB3CDb",
                       "start_block": 7736400, "close_factor_rules": "v3.3"},
               source=f"{AAVE_BOOK} src/AaveV3Arbitrum.sol POOL_ADDRESSES_PROVIDER",
               field_sources={
                   "start_block": "aave/protocol-subgraphs config/arbitrum-v3.json "
                                  "PoolAddressesProviderRegistryStartBlock (deployed before the market's "
                                  "provider and Pool, so no Pool log is older)",
                   "close_factor_rules": "Aave V3 markets run aave-v3-origin 3.3 or later"}),
        comet("usdc", "0x9c4ec768c28520B50860ea7a15bd7213a9fF58bf", 122080500),
        comet("weth", "0x6f7D514bbD4aFf3BcD1140B7344b32f063dEe486", 219386101),
        comet("usdt", "0xd98Be00b5D27fc98112BdE293e487f8D4cA57d07", 223796350),
        Market(kind="morpho_blue", name="morpho_blue",
               fields={"morpho": "0x6c247b1F6182318877311737BaC0844bAa518F5e", "start_block": 296446593,
                       "markets": [],
                       "usd_feeds": {
                           "0xaf88d065e77c8cC2239327C5EDb3A432268e5831": "0x50834F3163758fcC1Df9973b6e91f0F0F0434aD3",
                           "0x82aF49447D8a07e3bd95BD0d56f35241523fBab1": ETH_USD,
                           "0xFd086bC7CD5C481DCC9C85ebE478A1C0b69FCbb9": "0x3f3f5dF88dC9F13eac63DF89EC16ef6e7E25DdE7",
                       }},
               source="npm @morpho-org/morpho-ts 2.8.0 lib/esm/addresses.js ChainId.ArbitrumMainnet (morpho, "
                      "and its deployment block)",
               field_sources={
                   "markets": "empty: every market from CreateMarket logs",
                   "usd_feeds": f"loan tokens USDC (native), WETH, USDT ({TOKENS}) -> USDC / USD, ETH / USD, "
                                f"USDT / USD ({CHAINLINK}); markets lending other tokens are reported, not sent"}),
        Market(kind="perennial_v2", name="perennial_v2",
               fields={"market_factory": "0xDaD8A103473dfd47F90168A0E46766ed48e26EC7", "start_block": 135919457},
               source=f"{PERENNIAL_SDK} dist/constants/contracts.js MarketFactoryAddresses[arbitrum]",
               field_sources={
                   "start_block": "equilibria-xyz/perennial-v2 packages/deploy/deployments/arbitrum/"
                                  "ProxyAdmin.json receipt.blockNumber (the v2 ProxyAdmin, deployed before "
                                  "the factory proxy it administers)"},
               note="Perennial's activity has moved to its own chain; the Arbitrum markets may hold few "
                    "or no positions. DSU is valued at 1 USD (no dsu_usd_feed)."),
        gearbox("Arbitrum", "0x7d04eCdb892Ae074f03B5D0aBA03796F90F3F2af", 184650310),
    ),
    omitted=(),
)
