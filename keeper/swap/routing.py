"""Swaps: Uniswap V3 pools (from the config or found with the factory's getPool), routes between
two tokens (the direct pool of each fee tier, two hops through WETH or the main stablecoin), quotes
from QuoterV2 by eth_call in JSON-RPC batches, and the flash lenders of a token with what they hold.

One instance serves every adapter; lookups are cached (a pool, once found, stays; a missing one is
asked again after POOL_RECHECK_BLOCKS)."""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from eth_utils import to_checksum_address

from keeper.abi import load
from keeper.chain.client import Chain, block_tag
from keeper.chain.multicall import Call, CallFailed
from keeper.errors import RpcError, StartupError
from keeper.executor import FlashSource
from keeper.swap.config import FlashConfig, SwapConfig
from keeper.swap.lenders import Lender
from keeper.swap.routes import Route

FACTORY = load("UniswapV3Factory")
POOL = load("UniswapV3Pool")
QUOTER = load("QuoterV2")
ERC20 = load("ERC20")
AAVE_POOL = load("aave_v3/AaveV3Pool")
ZERO = "0x0000000000000000000000000000000000000000"
POOL_RECHECK_BLOCKS = 1_000


def _bit(word: int, n: int) -> bool:
    return bool((word >> n) & 1)


class Swaps:
    def __init__(self, swap: SwapConfig, flash: FlashConfig, chain: Chain):
        self.cfg = swap
        self.flash_cfg = flash
        self.chain = chain
        # (token_a, token_b) sorted, fee -> (pool or None, block it was looked up at)
        self._pools: dict[tuple[str, str, int], tuple[str | None, int]] = {}
        self._symbols: dict[str, str] = {}
        self._a_tokens: dict[tuple[str, str], str] = {}  # (Aave Pool, token) -> aToken (ZERO: not listed)
        self._started = False

    def contracts(self) -> dict[str, str]:
        out = {"UniswapV3Factory": self.cfg.factory, "QuoterV2": self.cfg.quoter, "SwapRouter": self.cfg.router}
        if self.flash_cfg.morpho:
            out["Morpho Blue (flash lender)"] = self.flash_cfg.morpho
        if self.flash_cfg.aave_pool:
            out["Aave V3 Pool (flash lender)"] = self.flash_cfg.aave_pool
        return out

    async def start(self) -> None:
        """Check the contracts answer; read the configured pools. Idempotent (every adapter in flash
        mode calls it)."""
        if self._started:
            return
        for what, addr in self.contracts().items():
            if not await self.chain.get_code(addr):
                raise StartupError(f"swap: no contract code at {what} {addr}")
        if self.cfg.pools:
            calls = [Call(p, POOL.fn(n).encode(), POOL.fn(n).decode) for p in self.cfg.pools
                     for n in ("token0", "token1", "fee")]
            try:
                res = await self.chain.multicall_strict(calls)
            except RpcError as e:
                raise StartupError(f"swap.pools: a pool does not answer token0/token1/fee: {e}") from None
            for i, p in enumerate(self.cfg.pools):
                t0, t1, fee = res[3 * i: 3 * i + 3]
                self._pools[(*sorted((t0, t1)), fee)] = (p, 2**62)
        self._started = True

    # ---- symbols ----------------------------------------------------------------------------
    async def load_symbols(self, tokens: Iterable[str]) -> None:
        todo = [t for t in dict.fromkeys(tokens) if t not in self._symbols]
        fn = ERC20.fn("symbol")
        res = await self.chain.multicall([Call(t, fn.encode(), fn.decode) for t in todo])
        for t, s in zip(todo, res):
            self._symbols[t] = s if isinstance(s, str) else t[:8]

    def symbol(self, token: str) -> str:
        return self._symbols.get(token, token[:8])

    # ---- pools and routes ------------------------------------------------------------------
    def _key(self, a: str, b: str, fee: int) -> tuple[str, str, int]:
        x, y = sorted((a, b))
        return x, y, fee

    async def load_pools(self, pairs: Iterable[tuple[str, str]], block: int) -> None:
        """getPool for every (pair, fee tier) not known (or missing for a while), in one multicall."""
        if self.cfg.pools:
            return  # only the configured pools
        todo = []
        for a, b in pairs:
            if a == b:
                continue
            for fee in self.cfg.fee_tiers:
                key = self._key(a, b, fee)
                known = self._pools.get(key)
                if known is None or (known[0] is None and block - known[1] >= POOL_RECHECK_BLOCKS):
                    todo.append(key)
        todo = list(dict.fromkeys(todo))
        fn = FACTORY.fn("getPool")
        res = await self.chain.multicall([Call(self.cfg.factory, fn.encode(a, b, f), fn.decode) for a, b, f in todo],
                                         block)
        for key, pool in zip(todo, res):
            self._pools[key] = (None if isinstance(pool, CallFailed) or pool == ZERO else pool, block)

    def pool(self, a: str, b: str, fee: int) -> str | None:
        known = self._pools.get(self._key(a, b, fee))
        return known[0] if known else None

    def hops(self, token_in: str, token_out: str) -> set[tuple[str, str]]:
        """The pairs whose pools the routes from token_in to token_out may use."""
        mids = [m for m in (self.cfg.weth, self.cfg.stablecoin) if m not in (token_in, token_out)]
        return {(token_in, token_out), *((token_in, m) for m in mids), *((m, token_out) for m in mids)}

    def routes(self, token_in: str, token_out: str) -> list[Route]:
        """Every route of known pools: direct for each fee tier, then through WETH and the stablecoin."""
        tiers = self.cfg.fee_tiers
        out = [Route((token_in, token_out), (f,), (p,)) for f in tiers if (p := self.pool(token_in, token_out, f))]
        for mid in dict.fromkeys((self.cfg.weth, self.cfg.stablecoin)):
            if mid in (token_in, token_out):
                continue
            for f1, f2 in itertools.product(tiers, tiers):
                p1, p2 = self.pool(token_in, mid, f1), self.pool(mid, token_out, f2)
                if p1 and p2:
                    out.append(Route((token_in, mid, token_out), (f1, f2), (p1, p2)))
        return out

    def pools_of(self, token: str) -> list[tuple[str, int]]:
        """Known pools holding ``token``: (address, fee)."""
        return [(p, fee) for (a, b, fee), (p, _) in self._pools.items() if p and token in (a, b)]

    # ---- quotes ----------------------------------------------------------------------------
    async def quote(self, requests: Sequence[tuple[Route, int]], block: int) -> list[int | None]:
        """QuoterV2.quoteExactInput(path, amountIn).amountOut for each (route, amount), by eth_call in
        JSON-RPC batches; None where the quote reverts (no liquidity) or the amount is 0."""
        fn = QUOTER.fn("quoteExactInput")
        tag = block_tag(block)
        todo = [i for i, (_, amount) in enumerate(requests) if amount > 0]
        raws = await self.chain.batch(
            [("eth_call", [{"to": self.cfg.quoter, "data": "0x" + fn.encode(requests[i][0].path, requests[i][1]).hex()},
                           tag]) for i in todo], raise_errors=False)
        out: list[int | None] = [None] * len(requests)
        for i, raw in zip(todo, raws):
            if isinstance(raw, str):
                try:
                    out[i] = int(fn.decode(bytes.fromhex(raw[2:]))[0])
                except Exception:  # an answer that is not a quote
                    out[i] = None
        return out

    # ---- flash lenders -----------------------------------------------------------------------
    async def lenders(self, tokens: Iterable[str], block: int, *,
                      aave_pools: Iterable[str] = ()) -> dict[str, list[Lender]]:
        """For each token, every lender that could flash it this block with what it holds: Morpho
        Blue (its token balance), Aave V3 Pools (the reserve active, not paused, flashloan enabled:
        the aToken's underlying balance), Uniswap V3 pools holding it (when [flash] uniswap)."""
        tokens = list(dict.fromkeys(tokens))
        pools = list(dict.fromkeys([*([self.flash_cfg.aave_pool] if self.flash_cfg.aave_pool else []), *aave_pools]))
        await self._load_a_tokens(pools, tokens, block)
        prem, reserve = AAVE_POOL.fn("FLASHLOAN_PREMIUM_TOTAL"), AAVE_POOL.fn("getReserveData")
        bal = ERC20.fn("balanceOf")
        calls: list[Call] = [Call(p, prem.encode(), prem.decode) for p in pools]
        slots: list[tuple[str, FlashSource, str, int]] = []  # (token, source, lender, fee tier)
        for t in tokens:
            if self.flash_cfg.morpho:
                slots.append((t, FlashSource.MORPHO_BLUE, self.flash_cfg.morpho, 0))
                calls.append(Call(t, bal.encode(self.flash_cfg.morpho), bal.decode))
            for p in pools:
                a_token = self._a_tokens.get((p, t), ZERO)
                if a_token != ZERO:
                    slots.append((t, FlashSource.AAVE_V3, p, 0))
                    calls += [Call(t, bal.encode(a_token), bal.decode), Call(p, reserve.encode(t), reserve.decode)]
            if self.flash_cfg.uniswap:
                for pool, fee in self.pools_of(t):
                    slots.append((t, FlashSource.UNISWAP_V3, pool, fee))
                    calls.append(Call(t, bal.encode(pool), bal.decode))
        res = await self.chain.multicall(calls, block)
        premiums = dict(zip(pools, res[:len(pools)]))
        it = iter(res[len(pools):])
        out: dict[str, list[Lender]] = {t: [] for t in tokens}
        for t, source, lender, fee in slots:
            held = next(it)
            if source is FlashSource.AAVE_V3:
                data, premium = next(it), premiums.get(lender)
                if isinstance(data, CallFailed) or isinstance(premium, CallFailed) or premium is None:
                    continue
                config = data[0][0]  # ReserveConfiguration: active bit 56, paused 60, flashloan enabled 63
                if not _bit(config, 56) or _bit(config, 60) or not _bit(config, 63):
                    continue
                fee = premium
            if not isinstance(held, CallFailed):
                out[t].append(Lender(source, lender, held, fee))
        return out

    async def _load_a_tokens(self, pools: list[str], tokens: list[str], block: int) -> None:
        """Each Aave Pool's aToken of each token (it never changes), read once."""
        todo = [(p, t) for p in pools for t in tokens if (p, t) not in self._a_tokens]
        fn = AAVE_POOL.fn("getReserveData")
        res = await self.chain.multicall([Call(p, fn.encode(t), fn.decode) for p, t in todo], block)
        for key, d in zip(todo, res):
            self._a_tokens[key] = ZERO if isinstance(d, CallFailed) else to_checksum_address(d[8])
