"""Pull oracles: signed price updates fetched off chain and handed to a contract with the
transaction that needs them (Pyth). One small interface, two sources:

- HermesPullOracle: a Pyth Hermes-style price service over HTTP
  (``GET {url}/v2/updates/price/latest?ids[]=<id>&encoding=hex``), one accumulator blob carrying
  every requested feed;
- MockPythPullOracle: devnet and tests: the update is built by MockPyth's own pure
  createPriceFeedUpdateData (eth_call), priced from Chainlink feeds, published at the latest block's
  timestamp; one blob per feed.

The on-chain fee is IPyth.getUpdateFee(updateData) (native token, wei)."""
from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from keeper.abi import load
from keeper.chain.client import Chain, hexint
from keeper.config import PullOracleConfig
from keeper.errors import KeeperError
from keeper.oracles.chainlink import ChainlinkFeed

PYTH = load("pyth")
MOCK_PYTH = load("pyth_mock")
MOCK_EXPO = -8  # MockPyth prices carry the Chainlink feeds' 8 decimals


class PullOracleError(KeeperError):
    """A price update could not be had (bad request, unknown feed, malformed answer)."""


class TransientPullOracleError(PullOracleError):
    """Worth retrying: 5xx, 429, connection trouble, timeout."""


def feed_key(feed_id: str | bytes) -> str:
    """Canonical feed id: 0x + 64 lower-case hex digits."""
    h = feed_id.hex() if isinstance(feed_id, (bytes, bytearray)) else feed_id.lower().removeprefix("0x")
    if len(h) != 64:
        raise PullOracleError(f"not a 32-byte feed id: {feed_id!r}")
    int(h, 16)
    return "0x" + h


@dataclass(frozen=True)
class FeedPrice:
    price: int  # significand: value = price x 10**expo
    conf: int
    expo: int
    publish_time: int  # unix seconds

    def scaled(self, decimals: int) -> int:
        """The price with ``decimals`` decimals, truncated toward zero."""
        shift = self.expo + decimals
        if shift >= 0:
            return self.price * 10**shift
        q = abs(self.price) // 10**-shift
        return q if self.price >= 0 else -q


@dataclass(frozen=True)
class PriceUpdate:
    """What a contract needs to verify the prices (``data``: IPyth updateData, one blob per entry)
    and what they say (``feeds``: feed id -> price)."""
    data: tuple[bytes, ...]
    feeds: dict[str, FeedPrice]
    by_feed: dict[str, bytes] = field(default_factory=dict)  # feed id -> the blob carrying it

    def blob(self, feed_id: str | bytes) -> bytes:
        """The signed update bytes that carry ``feed_id``."""
        return self.by_feed[feed_key(feed_id)]

    @property
    def publish_time(self) -> int:
        """The oldest publish time among the feeds."""
        return min(f.publish_time for f in self.feeds.values())


class PullOracle(ABC):
    @abstractmethod
    async def fetch(self, feed_ids: list[str]) -> PriceUpdate:
        """The latest signed update for ``feed_ids`` (0x-prefixed 32-byte hex)."""

    @abstractmethod
    async def update_fee(self, update: PriceUpdate, pyth: str | None = None) -> int:
        """getUpdateFee(update.data) in wei on ``pyth`` (default: the configured contract)."""

    async def close(self) -> None:
        return None


async def pyth_update_fee(chain: Chain, pyth: str, data: tuple[bytes, ...] | list[bytes]) -> int:
    fn = PYTH.fn("getUpdateFee")
    return fn.decode(await chain.eth_call(pyth, fn.encode(list(data))))


# ---- Hermes ----------------------------------------------------------------------------------------

def _transient(exc: BaseException) -> bool:
    return isinstance(exc, (TransientPullOracleError, aiohttp.ClientConnectionError, asyncio.TimeoutError))


def parse_hermes(body: object, wanted: list[str]) -> PriceUpdate:
    """A /v2/updates/price/latest answer (encoding=hex, parsed=true) -> PriceUpdate."""
    try:
        blobs = tuple(bytes.fromhex(h.removeprefix("0x")) for h in body["binary"]["data"])  # type: ignore[index]
        feeds = {}
        for p in body["parsed"]:  # type: ignore[index]
            pr = p["price"]
            feeds[feed_key(p["id"])] = FeedPrice(int(pr["price"]), int(pr["conf"]), int(pr["expo"]),
                                                 int(pr["publish_time"]))
    except (KeyError, TypeError, ValueError) as e:
        raise PullOracleError(f"malformed price service answer ({type(e).__name__}: {e}): {str(body)[:200]}") from None
    missing = [f for f in wanted if f not in feeds]
    if missing:
        raise PullOracleError(f"price service answer lacks feeds {missing}")
    if not blobs:
        raise PullOracleError("price service answer carries no update data")
    # One accumulator update carries every requested feed.
    return PriceUpdate(blobs, feeds, {f: blobs[0] for f in feeds} if len(blobs) == 1 else
                       {f: b for f, b in zip(wanted, blobs)})


class HermesPullOracle(PullOracle):
    def __init__(self, url: str, chain: Chain | None = None, *, pyth: str | None = None,
                 timeout: float = 5.0, retries: int = 3):
        self.url = url.rstrip("/")
        self.chain = chain
        self.pyth = pyth
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.retry: dict[str, Any] = {"retry": retry_if_exception(_transient), "stop": stop_after_attempt(retries + 1),
                                      "wait": wait_exponential(multiplier=0.05, max=2), "reraise": True}
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def fetch(self, feed_ids: list[str]) -> PriceUpdate:
        wanted = [feed_key(f) for f in feed_ids]
        if not wanted:
            raise PullOracleError("no feed ids asked for")
        params = [("ids[]", f) for f in wanted] + [("encoding", "hex"), ("parsed", "true")]
        async for attempt in AsyncRetrying(**self.retry):
            with attempt:
                body = await self._get("/v2/updates/price/latest", params)
        return parse_hermes(body, wanted)

    async def _get(self, path: str, params: list[tuple[str, str]]) -> object:
        async with self._http().get(self.url + path, params=params) as r:
            text = await r.text()
            if r.status >= 500 or r.status == 429:
                raise TransientPullOracleError(f"price service {r.status}: {text[:200]}")
            if r.status != 200:
                raise PullOracleError(f"price service refused the request ({r.status}): {text[:300]}")
            try:
                return await r.json(content_type=None)
            except ValueError:
                raise PullOracleError(f"price service answered non-JSON: {text[:200]}") from None

    async def update_fee(self, update: PriceUpdate, pyth: str | None = None) -> int:
        target = pyth or self.pyth
        if self.chain is None or target is None:
            raise PullOracleError("no Pyth contract to price the update (set pull_oracle.pyth)")
        return await pyth_update_fee(self.chain, target, update.data)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


# ---- MockPyth (devnet) ---------------------------------------------------------------------------

class MockPythPullOracle(PullOracle):
    """Updates a devnet MockPyth accepts, priced from Chainlink feeds (feed id -> feed address)."""

    def __init__(self, chain: Chain, mock_pyth: str, feeds: dict[str, str], *, conf_bps: int = 0):
        self.chain = chain
        self.pyth = mock_pyth
        self.feeds = {feed_key(k): ChainlinkFeed(v) for k, v in feeds.items()}
        self.conf_bps = conf_bps

    async def fetch(self, feed_ids: list[str]) -> PriceUpdate:
        wanted = [feed_key(f) for f in feed_ids]
        unknown = [f for f in wanted if f not in self.feeds]
        if unknown:
            raise PullOracleError(f"mock_feeds has no Chainlink feed for {unknown}")
        block = await self.chain.get_block("latest")
        number, now = hexint(block["number"]), hexint(block["timestamp"])
        answers = await asyncio.gather(*(self.feeds[f].read(self.chain, number) for f in wanted))
        fn = MOCK_PYTH.fn("createPriceFeedUpdateData")
        feeds: dict[str, FeedPrice] = {}
        by_feed: dict[str, bytes] = {}
        for f, a in zip(wanted, answers):
            conf = a.price_8 * self.conf_bps // 10_000
            raw = await self.chain.eth_call(self.pyth, fn.encode(bytes.fromhex(f[2:]), a.price_8, conf, MOCK_EXPO,
                                                                  a.price_8, conf, now, now - 1), block=number)
            by_feed[f] = fn.decode(raw)
            feeds[f] = FeedPrice(a.price_8, conf, MOCK_EXPO, now)
        return PriceUpdate(tuple(by_feed[f] for f in wanted), feeds, by_feed)

    async def update_fee(self, update: PriceUpdate, pyth: str | None = None) -> int:
        return await pyth_update_fee(self.chain, pyth or self.pyth, update.data)


def build_pull_oracle(cfg: PullOracleConfig, chain: Chain) -> PullOracle:
    if cfg.source == "hermes":
        assert cfg.url
        return HermesPullOracle(cfg.url, chain, pyth=cfg.pyth, timeout=cfg.timeout_seconds, retries=cfg.retries)
    assert cfg.mock_pyth
    return MockPythPullOracle(chain, cfg.mock_pyth, dict(cfg.mock_feeds), conf_bps=cfg.mock_conf_bps)


__all__ = ["FeedPrice", "HermesPullOracle", "MockPythPullOracle", "PriceUpdate", "PullOracle", "PullOracleError",
           "TransientPullOracleError", "build_pull_oracle", "feed_key", "parse_hermes", "pyth_update_fee"]
