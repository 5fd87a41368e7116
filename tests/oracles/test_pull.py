"""The pull-oracle client: a Hermes-style HTTP price service (a local aiohttp server playing it:
good answer, 5xx retried, 4xx a clear error, timeout) and MockPyth on Anvil (updates built by the
contract itself, accepted by updatePriceFeeds, priced from the Chainlink feed)."""
from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from eth_utils import keccak
from keeper_devnet.multicall3 import install_multicall3
from keeper_devnet.pyth import (
    deploy_mock_pyth,
    get_price_no_older_than,
    update_price_feeds,
)
from keeper_devnet.tokens import deploy_token, set_price

from keeper.chain.client import Chain
from keeper.chain.rpc import Rpc
from keeper.config import PullOracleConfig
from keeper.oracles.pull import (
    HermesPullOracle,
    MockPythPullOracle,
    PullOracleError,
    build_pull_oracle,
    feed_key,
)

ETH = "0x" + keccak(b"Crypto.ETH/USD").hex()
BTC = "0x" + keccak(b"Crypto.BTC/USD").hex()
BLOB = bytes.fromhex("504e41550100") + b"\x11" * 40


def hermes_body(ids: list[str]) -> dict:
    prices = {ETH: ("301234567890", "1500000", -8, 1_700_000_000), BTC: ("6000012345678", "9", -8, 1_700_000_001)}
    return {"binary": {"encoding": "hex", "data": [BLOB.hex()]},
            "parsed": [{"id": i[2:], "price": {"price": prices[i][0], "conf": prices[i][1], "expo": prices[i][2],
                                               "publish_time": prices[i][3]},
                        "ema_price": {"price": "1", "conf": "1", "expo": -8, "publish_time": 1}} for i in ids]}


class Hermes:
    """A scripted price service: answers each request with the next behaviour in ``script``."""

    def __init__(self, script: list[str]):
        self.script = script
        self.requests: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append({"ids": request.query.getall("ids[]", []), "encoding": request.query.get("encoding")})
        what = self.script.pop(0) if self.script else "ok"
        if what == "500":
            return web.Response(status=503, text="upstream busy")
        if what == "404":
            return web.Response(status=404, text='{"message":"Price ids not found: 0xdead"}')
        if what == "slow":
            await asyncio.sleep(1.0)
        return web.json_response(hermes_body(["0x" + i.removeprefix("0x") for i in request.query.getall("ids[]")]))


async def serve(script: list[str]) -> tuple[TestServer, Hermes]:
    h = Hermes(script)
    app = web.Application()
    app.router.add_get("/v2/updates/price/latest", h.handle)
    server = TestServer(app)
    await server.start_server()
    return server, h


async def test_hermes_good_answer():
    server, h = await serve(["ok"])
    oracle = HermesPullOracle(str(server.make_url("")), timeout=2, retries=2)
    try:
        up = await oracle.fetch([ETH, BTC.upper().replace("0X", "0x")])
    finally:
        await oracle.close()
        await server.close()
    assert h.requests == [{"ids": [ETH, BTC], "encoding": "hex"}]
    assert up.data == (BLOB,) and up.blob(ETH) == BLOB and up.blob(BTC) == BLOB
    assert up.feeds[ETH].price == 301234567890 and up.feeds[ETH].expo == -8 and up.feeds[ETH].conf == 1_500_000
    assert up.feeds[ETH].scaled(6) == 3012345678 and up.feeds[BTC].scaled(18) == 60000_12345678 * 10**10
    assert up.publish_time == 1_700_000_000


async def test_hermes_retries_5xx_then_succeeds():
    server, h = await serve(["500", "500", "ok"])
    oracle = HermesPullOracle(str(server.make_url("")), timeout=2, retries=3)
    try:
        up = await oracle.fetch([ETH])
    finally:
        await oracle.close()
        await server.close()
    assert len(h.requests) == 3 and up.feeds[ETH].publish_time == 1_700_000_000


async def test_hermes_5xx_beyond_retries_fails():
    server, h = await serve(["500"] * 5)
    oracle = HermesPullOracle(str(server.make_url("")), timeout=2, retries=1)
    try:
        with pytest.raises(PullOracleError, match="503"):
            await oracle.fetch([ETH])
    finally:
        await oracle.close()
        await server.close()
    assert len(h.requests) == 2  # one try + one retry


async def test_hermes_4xx_is_a_clear_error_not_retried():
    server, h = await serve(["404"])
    oracle = HermesPullOracle(str(server.make_url("")), timeout=2, retries=3)
    try:
        with pytest.raises(PullOracleError, match=r"refused the request \(404\).*Price ids not found"):
            await oracle.fetch([ETH])
    finally:
        await oracle.close()
        await server.close()
    assert len(h.requests) == 1


async def test_hermes_timeout_is_retried_then_reported():
    server, h = await serve(["slow", "slow", "slow"])
    oracle = HermesPullOracle(str(server.make_url("")), timeout=0.2, retries=1)
    t0 = time.monotonic()
    try:
        with pytest.raises(asyncio.TimeoutError):
            await oracle.fetch([ETH])
    finally:
        await oracle.close()
        await server.close()
    assert len(h.requests) == 2 and time.monotonic() - t0 < 2


def test_feed_ids_are_checked():
    assert feed_key(bytes.fromhex(ETH[2:])) == ETH
    with pytest.raises(PullOracleError):
        feed_key("0x1234")


async def test_mock_pyth_update_is_accepted_on_chain(deployer, snapshot):
    d = deployer
    await install_multicall3(d)
    weth = await deploy_token(d, "WETH", 18, 3_000_00000000)
    pyth = await deploy_mock_pyth(d, valid_time_period=60, fee_wei=7)
    cfg = PullOracleConfig(source="mock_pyth", mock_pyth=pyth, mock_feeds={ETH: weth.feed}, mock_conf_bps=10)
    rpc = Rpc(d.w3.provider.endpoint_uri)
    oracle = build_pull_oracle(cfg, Chain(rpc))
    assert isinstance(oracle, MockPythPullOracle)
    try:
        await set_price(d, weth, 2_123_45678901)
        up = await oracle.fetch([ETH])
        now = (await d.w3.eth.get_block("latest"))["timestamp"]
        assert up.feeds[ETH].price == 2_123_45678901 and up.feeds[ETH].expo == -8
        assert up.feeds[ETH].conf == 2_123_45678901 // 1000 and up.feeds[ETH].publish_time == now
        assert await oracle.update_fee(up) == 7 == await d.call(pyth, (await _abi()), "getUpdateFee", list(up.data))
        await update_price_feeds(d, pyth, list(up.data))
        assert await get_price_no_older_than(d, pyth, ETH, 60) == (2_123_45678901, 2_123_45678901 // 1000, -8, now)
        with pytest.raises(PullOracleError, match="no Chainlink feed"):
            await oracle.fetch([BTC])
    finally:
        await oracle.close()
        await rpc.close()


async def _abi():
    from keeper_devnet.pyth import mock_pyth_artifact
    return mock_pyth_artifact().abi
