"""What a flash plan is made of, from a search Solution: the executor's swaps with their minimum
outputs, the minimum profit the executor enforces, the figures reports show, the skip when the sale
cannot pay, and the start-up check of the executor."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keeper.chain.client import Chain
from keeper.errors import StartupError
from keeper.executor import ExecutorError, Profit, Swap, owner_of
from keeper.protocols.plan import Execution, Modes, Skip, SkipCode, TokenPrice, amount_text
from keeper.swap.routing import Swaps
from keeper.swap.search import Solution, Unsolved

PERCENTAGE_FACTOR = 10_000


def min_out(amount: int, slippage_bps: int) -> int:
    """A swap's amountOutMinimum: its quote less the configured slippage."""
    return amount * (PERCENTAGE_FACTOR - slippage_bps) // PERCENTAGE_FACTOR


def executor_swaps(sol: Solution, router: str, slippage_bps: int) -> tuple[Swap, ...]:
    """One SwapRouter.exactInput per sale, of everything the executor received of the token
    (amountIn 0), paying at least the quote less the slippage."""
    return tuple(Swap(router, leg.route.path, 0, min_out(leg.amount_out, slippage_bps)) for leg in sol.legs)


def min_profit(sol: Solution, slippage_bps: int) -> int:
    """The profit the executor must leave or revert: the quoted profit less what the swaps may
    lose to slippage (at least 1: a flow that earns nothing reverts)."""
    loss = sum(leg.amount_out - min_out(leg.amount_out, slippage_bps) for leg in sol.legs)
    return max(1, sol.profit - loss)


def profit_arg(sol: Solution, token: str, slippage_bps: int) -> Profit:
    return Profit(token, min_profit(sol, slippage_bps))


@dataclass(frozen=True)
class FlashReport:
    """How a flash plan is paid and what it should leave, for reports (profit-token units)."""
    route: str  # each sale's route, " + " between sales
    sold: str  # e.g. "10.0000 WETH"
    quoted_out: int  # what QuoterV2 quotes for the sales
    min_out: int  # the swaps' amountOutMinimum, summed
    lender: str | None  # "morpho_blue", "aave_v3", "uniswap_v3"; None: nothing borrowed
    lender_address: str | None
    borrowed: int
    flash_fee: int
    profit_token: str
    profit: int  # quoted
    min_profit: int  # enforced by the executor
    sizes_quoted: int  # sizes the search quoted


def route_label(sol: Solution, swaps: Swaps) -> str:
    return " + ".join(leg.route.label(swaps.symbol) for leg in sol.legs)


def sold_text(sol: Solution, price: Callable[[str], TokenPrice | None]) -> str:
    return " + ".join(amount_text(leg.amount_in, price(leg.route.tokens[0]), leg.route.tokens[0]) for leg in sol.legs)


def report(sol: Solution, swaps: Swaps, profit_token: str, price: Callable[[str], TokenPrice | None]) -> FlashReport:
    bps = swaps.cfg.slippage_bps
    return FlashReport(
        route=route_label(sol, swaps), sold=sold_text(sol, price), quoted_out=sol.out,
        min_out=sum(min_out(leg.amount_out, bps) for leg in sol.legs),
        lender=sol.lender.name if sol.lender else None, lender_address=sol.lender.address if sol.lender else None,
        borrowed=sol.candidate.borrow, flash_fee=sol.flash_fee, profit_token=profit_token, profit=sol.profit,
        min_profit=min_profit(sol, bps), sizes_quoted=sol.quoted)


def skip_of(result: Solution | Unsolved | None, price: Callable[[str], TokenPrice | None], swaps: Swaps,
            profit_token: str) -> Skip | None:
    """Why no flash plan: no route, no lender, or a sale that cannot repay (None: there is one)."""
    if result is None:
        return Skip(SkipCode.UNREADABLE, "no quote this block")
    if isinstance(result, Unsolved):
        code = {"no_route": SkipCode.NO_ROUTE, "no_quote": SkipCode.NO_ROUTE, "no_lender": SkipCode.NO_FLASH_LIQUIDITY,
                "no_size": SkipCode.NO_VALID_AMOUNT}[result.why]
        return Skip(code, result.message)
    if result.profit > 0:
        return None
    p = price(profit_token)
    c = result.candidate
    fee = f" + flash fee {amount_text(result.flash_fee, p, profit_token)}" if result.flash_fee else ""
    back = f" + {amount_text(c.refund, p, profit_token)} paid back" if c.refund else ""
    return Skip(SkipCode.SWAP_CANNOT_REPAY,
                f"selling {sold_text(result, price)} on {route_label(result, swaps)} quotes "
                f"{amount_text(result.out, p, profit_token)}{back}, not more than the "
                f"{amount_text(c.cost, p, profit_token)} repaid{fee}; no smaller size pays either "
                f"({result.quoted} sizes quoted)")


def modes(execution: str, *, inventory_usd: int | None, inventory_gas: int, flash: Solution | Unsolved | None,
          flash_gas: int, profit_price: TokenPrice | None, swaps: Swaps | None,
          price: Callable[[str], TokenPrice | None], profit_token: str, note: str | None = None) -> Modes:
    """Both modes' figures for scan: the inventory plan's value, the flash plan's quoted profit."""
    flash_usd = route = quoted = None
    if isinstance(flash, Solution) and swaps is not None:
        route = route_label(flash, swaps)
        quoted = f"{sold_text(flash, price)} -> {amount_text(flash.out, profit_price, profit_token)}"
        if profit_price is not None:
            flash_usd = profit_price.usd(flash.profit)
    elif isinstance(flash, Unsolved):
        note = note or flash.message
    return Modes(Execution(execution), inventory_usd, inventory_gas, flash_usd, flash_gas, route, quoted, note)


async def check_executor(chain: Chain, name: str, executor: str, owner: str) -> None:
    """The executor exists and the keeper's signer owns it (only the owner may start a flow)."""
    try:
        got = await owner_of(chain, executor)
    except ExecutorError as e:
        raise StartupError(f"{name}: executor: {e}") from None
    if got.lower() != owner.lower():
        raise StartupError(f"{name}: executor {executor} is owned by {got}, not by the keeper's signer {owner}")
