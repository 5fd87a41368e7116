"""A world with the real Aave V3 deployed once per session (on the session Anvil), and helpers to
run the keeper against it."""
from __future__ import annotations

import pytest
from eth_account import Account

from keeper.chain.signer import Signer
from keeper.config import load_config
from keeper.devnet.world import KEEPER_KEY, build_world, config_text
from keeper.engine.daemon import Keeper


@pytest.fixture(scope="session")
async def real_world(deployer):
    return await build_world(deployer, aave="real")


async def make_keeper(world, tmp_path, **cfg) -> Keeper:
    path = tmp_path / "keeper.toml"
    path.write_text(config_text(world, **cfg))
    keeper = Keeper(load_config(path), Signer(Account.from_key(KEEPER_KEY)))
    await keeper.start()
    return keeper


async def run_until_quiet(keeper: Keeper, rounds: int = 5) -> None:
    """Step block after block until a step records nothing new."""
    for _ in range(rounds):
        before = len(keeper.recorder.outcomes)
        await keeper.step(await keeper.chain.block_number())
        if len(keeper.recorder.outcomes) == before:
            return


async def run_keeper(world, tmp_path, *, until_quiet: bool = False, **cfg) -> Keeper:
    """A keeper for ``world`` that runs one block step (or steps until quiet) and is closed; its
    recorder holds what it did."""
    keeper = await make_keeper(world, tmp_path, **cfg)
    try:
        if until_quiet:
            await run_until_quiet(keeper)
        else:
            await keeper.step(await keeper.chain.block_number())
    finally:
        await keeper.close()
    return keeper


async def scan_rows(world, tmp_path, **cfg):
    keeper = await make_keeper(world, tmp_path, **cfg)
    try:
        return await keeper.scan()
    finally:
        await keeper.close()
