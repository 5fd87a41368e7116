"""Pyth price shocks written in storage on a fork: the probe finds a feed's entry in the real Pyth's
layout (a stand-in with that layout) and in MockPyth's (the devnet's), the shocked price is what the
Pyth contract answers on the fork, and the origin chain keeps its price."""
from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak
from keeper_devnet.protocols.gearbox_v3.world import WETH_USD_FEED_ID
from keeper_devnet.solc import compile_contract
from keeper_devnet.world import KEEPER_KEY, KEEPER_KEY_ENV, config_text

from keeper.chain.client import Chain
from keeper.chain.rpc import Rpc
from keeper.config import load_config
from keeper.errors import ConfigError
from keeper.live.anvil import ForkNode, find_anvil
from keeper.live.fork import Shock
from keeper.live.pyth import (
    Layout,
    PythPrice,
    find_price_slot,
    is_feed_id,
    pack_real,
    read_price,
    shock_pyth_price,
    unpack_real,
)
from keeper.live.rehearse import Options, rehearse

FEED = "0x" + "ab" * 32


def test_real_layout_word_round_trips_signed_fields():
    p = PythPrice(-123_456_789, 2**64 - 1, -8, 1_700_000_000)
    assert unpack_real(pack_real(p.publish_time, p.expo, p.price, p.conf)) == p
    assert pack_real(1, 0, 0, 0) == 1 and pack_real(0, -1, 0, 0) == (2**32 - 1) << 64  # publishTime lowest


def test_feed_ids_are_told_from_tokens():
    assert is_feed_id(WETH_USD_FEED_ID) and not is_feed_id("WETH")
    assert not is_feed_id("0x" + "11" * 20)  # a token address


async def _chain(url: str) -> Chain:
    return Chain(Rpc(url))


async def test_probe_finds_the_real_pyth_layout(anvil, deployer, snapshot):
    art = await compile_contract("tests/live/PythLayoutStandIn.sol", "PythLayoutStandIn")
    pyth = await deployer.deploy(art)
    info = (1_700_000_000, -8, 3_000 * 10**8, 2 * 10**8, 2_990 * 10**8, 3 * 10**8)
    await deployer.transact(pyth, art.abi, "setPriceInfo", bytes.fromhex(FEED[2:]), info)
    chain = await _chain(anvil.url)
    try:
        slot = await find_price_slot(chain, pyth, FEED)
        assert slot.layout is Layout.PYTH
        assert slot.base == int.from_bytes(keccak(encode(["bytes32", "uint256"], [bytes.fromhex(FEED[2:]), 213])), "big")
        assert await read_price(chain, pyth, FEED) == PythPrice(3_000 * 10**8, 2 * 10**8, -8, 1_700_000_000)  # restored
        written: dict = {}
        applied = await shock_pyth_price(chain, Shock.parse("x=-30%"), "x", pyth, FEED, 1_700_000_100, [], written)
        assert (applied.before, applied.after, applied.layout) == (3_000 * 10**8, 2_100 * 10**8, "pyth")
        assert await read_price(chain, pyth, FEED) == PythPrice(2_100 * 10**8, 14 * 10**7, -8, 1_700_000_100)
        assert await read_price(chain, pyth, FEED, ema=True) == PythPrice(2_093 * 10**8, 21 * 10**7, -8,
                                                                          1_700_000_100)
    finally:
        await chain.rpc.close()


async def test_pyth_shock_on_a_fork_of_the_devnet_only(deployer, world):
    """Through Gearbox's PythPriceFeed's Pyth (a forwarder over a MockPyth): the entry is found in
    the storage of the MockPyth the forwarder reads (a trace of the read names it), MockPyth's
    layout; the origin chain answers its old price."""
    gb = world.extra["gearbox"]
    origin = await _chain(world.url)
    node = await ForkNode.start(find_anvil(), world.url, fork_block=await origin.block_number(), chain_id=31_338,
                                block_time=1, base_fee=10**9)
    fork = await _chain(node.url)
    try:
        before = await read_price(origin, gb.pyth_forwarder, WETH_USD_FEED_ID)
        applied = await shock_pyth_price(fork, Shock.parse("WETH=-30%"), "WETH", gb.pyth_forwarder, WETH_USD_FEED_ID,
                                         before.publish_time + 5, [], {})
        assert (applied.storage, applied.layout) == (gb.pyth, "mock_pyth")
        assert applied.before == before.price and applied.after == before.price * 7 // 10
        for pyth in (gb.pyth_forwarder, gb.pyth):
            assert (await read_price(fork, pyth, WETH_USD_FEED_ID)).price == before.price * 7 // 10
        assert await read_price(origin, gb.pyth_forwarder, WETH_USD_FEED_ID) == before
    finally:
        await fork.rpc.close()
        await origin.rpc.close()
        await node.stop()


async def test_rehearsal_shocks_a_pyth_feed_by_id(deployer, world, tmp_path, monkeypatch):
    monkeypatch.setenv(KEEPER_KEY_ENV, KEEPER_KEY)
    gb = world.extra["gearbox"]
    origin = await _chain(world.url)
    try:
        before = await read_price(origin, gb.pyth, WETH_USD_FEED_ID)
        path = tmp_path / "keeper.toml"
        path.write_text(config_text(world))
        report = await rehearse(load_config(path), Options(fork_url=world.url, blocks=1,
                                                           shocks=(Shock.parse(f"{WETH_USD_FEED_ID}=-30%"),)))
        assert report.shocks == []  # no Chainlink-style feed is named by a Pyth feed id
        applied = {(p.pyth, p.storage, p.layout, p.before, p.after) for p in report.pyth_shocks}
        assert applied == {(gb.pyth_forwarder, gb.pyth, "mock_pyth", before.price, before.price * 7 // 10)}
        assert any("read from the signed update each commit carries" in n for n in report.not_shocked)  # Perennial
        assert "written in storage (mock_pyth layout" in report.text()
        assert await read_price(origin, gb.pyth, WETH_USD_FEED_ID) == before
    finally:
        await origin.rpc.close()


async def test_shock_naming_nothing_priced_is_refused(deployer, world, tmp_path, monkeypatch):
    monkeypatch.setenv(KEEPER_KEY_ENV, KEEPER_KEY)
    path = tmp_path / "keeper.toml"
    path.write_text(config_text(world, protocols=["aave_v3"]))
    with pytest.raises(ConfigError, match="Pyth feed"):
        await rehearse(load_config(path), Options(fork_url=world.url, blocks=1, shocks=(Shock.parse("NOPE=-5%"),)))


def test_hermes_prices_are_said_not_to_be_shocked():
    from types import SimpleNamespace

    from keeper.config import PullOracleConfig
    from keeper.live.rehearse import _not_shocked
    keeper = SimpleNamespace(cfg=SimpleNamespace(pull_oracle=PullOracleConfig(source="hermes",
                                                                              url="https://hermes.example")))
    (note,) = _not_shocked(keeper, [])  # type: ignore[arg-type]
    assert "live signed prices from the price service, not shocked" in note
    mock = SimpleNamespace(cfg=SimpleNamespace(pull_oracle=PullOracleConfig(source="mock_pyth",
                                                                            mock_pyth="0x" + "11" * 20)))
    assert _not_shocked(mock, []) == []  # type: ignore[arg-type]
