"""Chainlink AggregatorV3 reads (latestRoundData, decimals), normalised to USD with 8 decimals."""
from __future__ import annotations

from dataclasses import dataclass

from keeper.abi import load
from keeper.chain.client import Chain
from keeper.chain.multicall import Call

FEED = load("ChainlinkAggregatorV3")


@dataclass(frozen=True)
class FeedAnswer:
    price_8: int  # answer scaled to 8 decimals
    updated_at: int
    round_id: int


class ChainlinkFeed:
    def __init__(self, address: str):
        self.address = address
        self.decimals: int | None = None

    async def read(self, chain: Chain, block: int | str = "latest") -> FeedAnswer:
        calls = [Call(self.address, FEED.fn("latestRoundData").encode(), FEED.fn("latestRoundData").decode)]
        if self.decimals is None:
            calls.append(Call(self.address, FEED.fn("decimals").encode(), FEED.fn("decimals").decode))
        res = await chain.multicall_strict(calls, block)
        if self.decimals is None:
            self.decimals = res[1]
        round_id, answer, _, updated_at, _ = res[0]
        if answer <= 0:
            raise ValueError(f"Chainlink feed {self.address} answered a non-positive price {answer}")
        scaled = answer * 10**8 // 10**self.decimals if self.decimals >= 8 else answer * 10**(8 - self.decimals)
        return FeedAnswer(scaled, updated_at, round_id)
