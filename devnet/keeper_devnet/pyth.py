"""Pyth's MockPyth from @pythnetwork/pyth-sdk-solidity 4.3.1: the package's prebuilt creation code
(build/MockPyth_sol_MockPyth.bin, solc 0.8.29, uses PUSH0: fine on Anvil's default hardfork) with the
package's abis/MockPyth.json; nothing to compile. Update data comes from the contract's own pure
createPriceFeedUpdateData (eth_call). Gotchas: an update is ignored unless its publishTime is newer
than the stored one; errors are custom errors."""
from __future__ import annotations

import json

from keeper_devnet.deploy import Deployer
from keeper_devnet.solc import NODE_MODULES, Artifact

PYTH_CODE = "@pythnetwork/pyth-sdk-solidity@4.3.1"
_PKG = NODE_MODULES / "@pythnetwork" / "pyth-sdk-solidity"
# Custom error selectors (PythErrors.sol).
INSUFFICIENT_FEE = "0x025dbdd4"
STALE_PRICE = "0x19abf40e"
PRICE_FEED_NOT_FOUND = "0x14aebe68"

_artifact: Artifact | None = None


def mock_pyth_artifact() -> Artifact:
    global _artifact
    if _artifact is None:
        code = "0x" + (_PKG / "build" / "MockPyth_sol_MockPyth.bin").read_text().strip()
        abi = json.loads((_PKG / "abis" / "MockPyth.json").read_text())
        _artifact = Artifact("MockPyth", abi, code, "0x", {})
    return _artifact


def _id(feed_id: bytes | str) -> bytes:
    return bytes.fromhex(feed_id.removeprefix("0x")) if isinstance(feed_id, str) else feed_id


async def deploy_mock_pyth(d: Deployer, valid_time_period: int = 60, fee_wei: int = 1) -> str:
    """MockPyth(validTimePeriod seconds, singleUpdateFeeInWei)."""
    return await d.deploy(mock_pyth_artifact(), valid_time_period, fee_wei)


async def price_update_data(d: Deployer, pyth: str, feed_id: bytes | str, price: int, conf: int, expo: int,
                            publish_time: int, ema_price: int | None = None, ema_conf: int | None = None,
                            prev_publish_time: int | None = None) -> bytes:
    """One update blob for updatePriceFeeds (the EMA defaults to the price itself)."""
    return bytes(await d.call(pyth, mock_pyth_artifact().abi, "createPriceFeedUpdateData", _id(feed_id), price,
                              conf, expo, price if ema_price is None else ema_price,
                              conf if ema_conf is None else ema_conf, publish_time,
                              publish_time - 1 if prev_publish_time is None else prev_publish_time))


async def update_price_feeds(d: Deployer, pyth: str, updates: list[bytes], sender: str | None = None,
                             value: int | None = None) -> dict:
    """updatePriceFeeds paying getUpdateFee (or ``value``); returns the receipt."""
    abi = mock_pyth_artifact().abi
    if value is None:
        value = await d.call(pyth, abi, "getUpdateFee", updates)
    return await d.transact(pyth, abi, "updatePriceFeeds", updates, sender=sender, value=value)


async def get_price_no_older_than(d: Deployer, pyth: str, feed_id: bytes | str, age: int) -> tuple[int, int, int, int]:
    """(price, conf, expo, publishTime); reverts StalePrice / PriceFeedNotFound."""
    return tuple(await d.call(pyth, mock_pyth_artifact().abi, "getPriceNoOlderThan", _id(feed_id), age))
