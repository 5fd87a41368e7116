"""Capital-free execution support: Uniswap V3 routing and quotes (routing), flash lenders
(lenders), the search for the most profitable liquidation size (search), and what adapters build
from a solution (execution). The [swap] and [flash] tables are in config."""
