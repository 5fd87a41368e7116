"""Ethereum mainnet (chain id 1). Sources read on 2026-12-02:

- Aave V3 core market: npm @aave-dao/aave-address-book 4.68.1, src/AaveV3Ethereum.sol; deployment
  block: aave/protocol-subgraphs config/mainnet-v3.json (PoolAddressesProviderRegistryStartBlock).
- Compound III: compound-finance/comet deployments/mainnet/<market>/roots.json ("comet"); deployment
  blocks: a third-party indexer's public Compound III market table (see COMET_BLOCKS below).
- Morpho Blue: npm @morpho-org/morpho-ts 2.8.0 (the address registry of @morpho-org/blue-sdk 6.4.0),
  lib/esm/addresses.js, ChainId.EthMainnet (address and deployment block).
- Chainlink feeds and token addresses: @aave-dao/aave-address-book 4.68.1, src/ChainlinkEthereum.sol
  and src/AaveV3Ethereum.sol (AaveV3EthereumAssets.*_UNDERLYING).
- Multicall3: mds1/multicall3 deployments.json. Pyth: Pyth docs, price-feeds/contract-addresses/evm.
- Gearbox V3: Gearbox-protocol/sdk on GitHub (Gearbox's own SDK), src/sdk/constants/address-provider.ts
  (the AddressProviderV3, from which the keeper lists the credit managers on chain) and
  src/sdk/constants/networks.ts ADDRESS_PROVIDER_BLOCK (its deployment block).
- Left out: Perennial V2 (not on Ethereum), Compound III cWETHv3 (its roots.json could not be read
  from the sources at hand).
"""
from keeper.presets import ChainPreset, Market, Omitted, Sourced

AAVE_BOOK = "npm @aave-dao/aave-address-book 4.68.1"
CHAINLINK = f"{AAVE_BOOK} src/ChainlinkEthereum.sol"
TOKENS = f"{AAVE_BOOK} src/AaveV3Ethereum.sol AaveV3EthereumAssets"
COMET_ROOTS = "compound-finance/comet deployments/mainnet/{}/roots.json"
# Comet proxy creation blocks: from a third-party indexer's public Compound III market table (not an
# official Compound source; 15331586 for cUSDCv3 also appears in two other public configs). A start
# block later than the proxy's creation would miss accounts: check it against a block explorer.
COMET_BLOCK_SOURCE = ("third-party public Compound III market table (not an official Compound source): "
                      "check it against the proxy's creation block")
GEARBOX_SDK = "Gearbox-protocol/sdk on GitHub (Gearbox's own SDK), read 2026-12-02"


def gearbox(network: str, address_provider: str, block: int) -> Market:
    """Gearbox V3 from the chain's AddressProviderV3 (the one address Gearbox publishes): the keeper
    reads its CONTRACTS_REGISTER at start and watches the credit managers reporting version 3.x."""
    return Market(
        kind="gearbox_v3", name="gearbox_v3",
        fields={"address_provider": address_provider, "start_block": block},
        source=f"{GEARBOX_SDK}, src/sdk/constants/address-provider.ts ADDRESS_PROVIDER.{network}",
        field_sources={"start_block": f"{GEARBOX_SDK}, src/sdk/constants/networks.ts ADDRESS_PROVIDER_BLOCK."
                                      f"{network} (the AddressProviderV3's deployment: every V3 credit "
                                      "manager and facade it lists came later)"},
        note=("The credit managers are those the AddressProviderV3's CONTRACTS_REGISTER lists (getCreditManagers) "
              "with version 3.x, read at start (logged with those left out). Markets Gearbox registers only "
              "through its newer V3.1 address provider and market configurators may not be in that register."))


def gearbox_omitted(network: str) -> str:
    """Why a chain's preset has no Gearbox V3 market: the SDK names no address provider there."""
    return (f"Gearbox V3 is not deployed on {network} ({GEARBOX_SDK}, src/sdk/constants/address-provider.ts: "
            "NOT_DEPLOYED)")


def comet(market: str, address: str, block: int) -> Market:
    return Market(kind="compound_v3", name=f"compound_v3_{market}",
                  fields={"comet": address, "start_block": block},
                  source=COMET_ROOTS.format(market), field_sources={"start_block": COMET_BLOCK_SOURCE})


PRESET = ChainPreset(
    chain="ethereum",
    chain_id=1,
    l2="none",
    sourced_on="2026-12-02",
    multicall=Sourced("0xcA11bde05977b3631167028862bE2a173976CA11", "mds1/multicall3 deployments.json (Mainnet, 1)"),
    native_usd_feed=Sourced("0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419", f"ETH / USD, {CHAINLINK} ETH__USD"),
    pyth=Sourced("0x4305FB66699C3B2702D4d05CF36551390A4c69C6",
                 "Pyth docs, price-feeds/contract-addresses/evm (Ethereum)"),
    max_gas_price_gwei="100",
    max_priority_fee_gwei="2",
    markets=(
        Market(kind="aave_v3", name="aave_v3_core",
               fields={"addresses_provider": "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e",
                       "start_block": 16291006, "close_factor_rules": "v3.3"},
               source=f"{AAVE_BOOK} src/AaveV3Ethereum.sol POOL_ADDRESSES_PROVIDER",
               field_sources={
                   "start_block": "aave/protocol-subgraphs config/mainnet-v3.json "
                                  "PoolAddressesProviderRegistryStartBlock (deployed before the market's "
                                  "provider and Pool, so no Pool log is older)",
                   "close_factor_rules": "Aave V3 markets run aave-v3-origin 3.3 or later"}),
        comet("usdc", "0xc3d688B66703497DAA19211EEdff47f25384cdc3", 15331586),
        comet("usdt", "0x3Afdc9BCA9213A35503b077a6072F3D0d5AB0840", 20190637),
        comet("wbtc", "0xe85Dc543813B8c2CFEaAc371517b925a166a9293", 21820087),
        Market(kind="morpho_blue", name="morpho_blue",
               fields={"morpho": "0xBBBBBbbBBb9cC5e90e3b3Af64bdAF62C37EEFFCb", "start_block": 18883124,
                       "markets": [],
                       "usd_feeds": {
                           "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48": "0x8fFfFfd4AfB6115b954Bd326cbe7B4BA576818f6",
                           "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2": "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419",
                           "0xdAC17F958D2ee523a2206206994597C13D831ec7": "0x3E7d1eAB13ad0104d2750B8863b489D65364e32D",
                       }},
               source="npm @morpho-org/morpho-ts 2.8.0 lib/esm/addresses.js ChainId.EthMainnet (morpho, "
                      "and its deployment block)",
               field_sources={
                   "markets": "empty: every market from CreateMarket logs",
                   "usd_feeds": f"loan tokens USDC, WETH, USDT ({TOKENS}) -> USDC / USD, ETH / USD, "
                                f"USDT / USD ({CHAINLINK}); markets lending other tokens are reported, not sent"}),
        gearbox("Mainnet", "0x9ea7b04Da02a5373317D745c1571c84aaD03321D", 18433056),
    ),
    omitted=(
        Omitted("perennial_v2", "Perennial V2 is not deployed on Ethereum (its SDK lists Arbitrum only)"),
    ),
    notes=(("Compound III cWETHv3 is left out: its deployment record could not be read from the sources "
            "at hand."),),
)
