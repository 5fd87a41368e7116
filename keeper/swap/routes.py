"""Uniswap V3 routes: a path of pools from the token sold to the token wanted."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keeper.executor import encode_path


@dataclass(frozen=True)
class Route:
    tokens: tuple[str, ...]  # token in, [intermediate], token out
    fees: tuple[int, ...]  # fee tier of each pool
    pools: tuple[str, ...]  # pool addresses, in order

    @property
    def path(self) -> bytes:
        """The path SwapRouter.exactInput and QuoterV2.quoteExactInput take (v3-periphery Path.sol)."""
        return encode_path(self.tokens, self.fees)

    def label(self, symbol: Callable[[str], str]) -> str:
        """E.g. "WETH -0.30%-> USDC" or "WETH -0.05%-> USDC -0.01%-> DAI"."""
        out = symbol(self.tokens[0])
        for fee, t in zip(self.fees, self.tokens[1:]):
            out += f" -{fee / 10_000:.2f}%-> {symbol(t)}"
        return out
