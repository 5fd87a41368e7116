"""A world with the real Aave V3 deployed once per session (on the session Anvil), and helpers to
run the keeper against it."""
from __future__ import annotations

import pytest
from eth_account import Account
from keeper_devnet.tokens import balance_of
from keeper_devnet.world import (
    KEEPER_ADDRESS,
    KEEPER_KEY,
    World,
    build_world,
    config_text,
    open_position,
)

from keeper.chain.signer import Signer
from keeper.config import load_config
from keeper.engine.daemon import Keeper
from keeper.errors import StartupError


async def make_keeper(world, tmp_path, *, rpc_url: str | None = None, extra: str = "", chain: str = "",
                      store=None, **cfg) -> Keeper:
    """A started keeper for ``world`` (config_text kwargs in ``cfg``; ``rpc_url``: another endpoint,
    e.g. a proxy in front of the node; ``extra``: TOML tables appended; ``chain``: keys added to
    [chain]; ``store``: an open store, else the configured one); closed again if start fails."""
    path = tmp_path / "keeper.toml"
    text = config_text(world, **cfg).replace("[chain]\n", "[chain]\n" + chain, 1)
    if rpc_url is not None:
        text = text.replace(f'rpc_url = "{world.url}"', f'rpc_url = "{rpc_url}"')
    path.write_text(text + extra)
    keeper = Keeper(load_config(path), Signer(Account.from_key(KEEPER_KEY)), store=store)
    try:
        await keeper.start()
    except BaseException:
        await keeper.close()
        raise
    return keeper


async def startup_error(world, tmp_path, match: str, **cfg) -> StartupError:
    """The StartupError (its message matching ``match``) a keeper for ``world`` refuses to start with."""
    with pytest.raises(StartupError, match=match) as e:
        await make_keeper(world, tmp_path, **cfg)
    return e.value


async def step(keeper: Keeper, block: int | None = None) -> list:
    """One block step at the head (or ``block``), then wait until the transaction manager has
    settled what the step sent (the daemon's block loop never waits: tests do, to read the records)."""
    out = await keeper.step(await keeper.chain.block_number() if block is None else block)
    await keeper.settle()
    return out


async def run_until_quiet(keeper: Keeper, rounds: int = 5) -> None:
    """Step (and settle) block after block until a step records nothing new."""
    for _ in range(rounds):
        before = [(o.attempt, o.status) for o in keeper.recorder.outcomes]
        await step(keeper)
        if [(o.attempt, o.status) for o in keeper.recorder.outcomes] == before:
            return


async def run_and_close(keeper: Keeper, *, until_quiet: bool = False) -> Keeper:
    """One block step (or steps until quiet), settled, then close; the recorder holds what it did."""
    try:
        if until_quiet:
            await run_until_quiet(keeper)
        else:
            await step(keeper)
    finally:
        await keeper.close()
    return keeper


async def run_keeper(world, tmp_path, *, until_quiet: bool = False, **cfg) -> Keeper:
    """A keeper for ``world`` (config_text kwargs in ``cfg``) run by run_and_close."""
    return await run_and_close(await make_keeper(world, tmp_path, **cfg), until_quiet=until_quiet)


async def scan_rows(world, tmp_path, **cfg):
    keeper = await make_keeper(world, tmp_path, **cfg)
    try:
        return await keeper.scan()
    finally:
        await keeper.close()


class Wallet:
    """The keeper wallet's token and native balances, to measure a run's result independently of
    the keeper's own figures: token changes at the world's feed prices minus native spent (gas,
    oracle fees) at the WETH price, in USD."""

    def __init__(self, d, world, address: str = KEEPER_ADDRESS):
        self.d, self.world, self.address = d, world, address

    async def _read(self) -> tuple[dict[str, int], int]:
        tokens = {s: await balance_of(self.d, t, self.address) for s, t in self.world.tokens.items()}
        return tokens, await self.d.w3.eth.get_balance(self.address)

    async def start(self) -> "Wallet":
        self.tokens0, self.eth0 = await self._read()
        return self

    async def net_usd(self) -> float:
        tokens, eth = await self._read()
        value = sum((tokens[s] - self.tokens0[s]) * t.price // 10**t.decimals for s, t in self.world.tokens.items())
        return (value - (self.eth0 - eth) * self.world.tokens["WETH"].price // 10**18) / 1e8


async def world_with_aave_positions(d, protocols: tuple[str, ...], positions) -> World:
    """build_world with ``protocols`` plus Aave positions ((collateral, debt) in whole tokens) opened
    from fresh accounts, kept in world.extra["aave_borrowers"]."""
    world = await build_world(d, protocols=protocols)
    users = world.take_accounts(len(positions))
    for u, (c, debt) in zip(users, positions):
        await open_position(d, world, u, c, debt)
    world.extra["aave_borrowers"] = users
    return world
