"""`keeper executor deploy` and `keeper executor withdraw`: the operator's two actions on the
LiquidationExecutor, signed by the keeper's configured signer within its gas price limits."""
from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address

from keeper.chain.client import Chain
from keeper.chain.fees import GWEI, Fees, current_fees
from keeper.chain.rpc import Rpc
from keeper.chain.signer import Signer
from keeper.config import Config, load_config
from keeper.errors import ConfigError, RpcError
from keeper.executor import UINT256_MAX, ExecutorError, deploy, withdraw


def add_parser(sub: Any) -> None:
    """The `executor` command and its `deploy` / `withdraw` subcommands."""
    ex = sub.add_parser("executor", help="deploy the LiquidationExecutor or withdraw tokens from it")
    cmds = ex.add_subparsers(dest="executor_command", required=True)
    d = cmds.add_parser("deploy", help="deploy a LiquidationExecutor owned by the signer; print its address")
    d.add_argument("--config", required=True, type=Path)
    w = cmds.add_parser("withdraw", help="send the executor's whole balance of a token to the owner (or --to)")
    w.add_argument("--config", required=True, type=Path)
    w.add_argument("--token", required=True, help="token address")
    w.add_argument("--to", default=None, help="recipient (default: the signer, the executor's owner)")
    w.add_argument("--executor", default=None, help="executor address (default: the one the config names)")


def _address(value: str, what: str) -> str:
    if not is_address(value):
        raise ConfigError(f"{what}: {value!r} is not an address (0x and 40 hex digits)")
    return to_checksum_address(value)


def configured_executor(cfg: Config) -> str:
    """The executor address the protocol entries of the config name (they must agree)."""
    found = {to_checksum_address(a) for p in cfg.protocols if (a := getattr(p, "executor", None))}
    if len(found) != 1:
        raise ConfigError("give --executor: the config names " +
                          ("no executor" if not found else f"several executors ({', '.join(sorted(found))})"))
    return found.pop()


async def _fees(chain: Chain, cfg: Config) -> Fees:
    """Current EIP-1559 fees, refused above keeper.max_gas_price_gwei and capped at it."""
    k = cfg.keeper
    fees = await current_fees(chain, max_priority_fee=int(k.max_priority_fee_gwei * GWEI))
    cap = int(k.max_gas_price_gwei * GWEI)
    if fees.expected_price > cap:
        raise ExecutorError(f"gas price {Decimal(fees.expected_price) / GWEI:.2f} gwei is above "
                            f"keeper.max_gas_price_gwei = {k.max_gas_price_gwei}")
    return Fees(fees.base_fee, fees.priority_fee, min(fees.max_fee, cap))


async def run(args: argparse.Namespace, signer_of: Any) -> int:
    """Run `keeper executor <deploy|withdraw>`; ``signer_of(cfg)`` loads the configured signer.
    Bad input raises ConfigError; a transaction that cannot be done prints why and returns 1."""
    try:
        return await _run(args, signer_of)
    except (ExecutorError, RpcError) as e:
        print(f"keeper: error: {e}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace, signer_of: Any) -> int:
    cfg = load_config(args.config)
    signer: Signer = signer_of(cfg)
    rpc = Rpc(cfg.chain.rpc_url)
    try:
        chain = Chain(rpc, multicall_address=cfg.chain.multicall_address)
        if (got := await chain.chain_id()) != cfg.chain.chain_id:
            raise ConfigError(f"chain.chain_id is {cfg.chain.chain_id} but the node at chain.rpc_url is chain {got}")
        if args.executor_command == "deploy":
            done = await deploy(chain, signer, fees=await _fees(chain, cfg))
            print(f'executor = "{done.address}"  # LiquidationExecutor owned by {done.owner}, '
                  f"deployed in tx {done.receipt.tx_hash} (gas {done.receipt.gas_used:,})")
            return 0
        executor = _address(args.executor, "--executor") if args.executor else configured_executor(cfg)
        token = _address(args.token, "--token")
        to = _address(args.to, "--to") if args.to else signer.address
        held = (await chain.erc20_balances([(token, executor)]))[0]
        if held == 0:
            print(f"executor {executor} holds no {token}: nothing sent")
            return 0
        receipt = await withdraw(chain, signer, executor, token, to=to, amount=UINT256_MAX,
                                 fees=await _fees(chain, cfg))
        print(f"withdrew {held} (smallest units) of {token} from {executor} to {to} in tx {receipt.tx_hash}")
        return 0
    finally:
        await rpc.close()
