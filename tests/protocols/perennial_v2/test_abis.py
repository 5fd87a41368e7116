"""Every function and event the keeper decodes on Perennial V2 (abis/perennial_v2, from
scripts/extract_abis.py), and the stand-ins' versions of them, against Perennial's published ABIs
(@perennial/sdk 0.0.3-beta.6, dist/abi): names, order and types, struct fields included. The sdk
describes v2.3 (Arbitrum); the Perennial chain runs v2.4, whose Order has `invalidation` after
`protection` and whose Guarantee is the 9-field one (perennial-v2 types/Order.sol, Guarantee.sol and
packages/deploy/deployments/perennial/MarketImpl.json): those two differences, and nothing else, are
allowed. PythFactory (pyth()) is not in the sdk."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak
from keeper_devnet.protocols.perennial_v2 import FROM_SDK, FROM_STAND_IN, UPDATE_INPUTS
from keeper_devnet.protocols.perennial_v2.sdk_abi import sdk_abis, sdk_version
from keeper_devnet.protocols.perennial_v2.world import perennial_artifacts

pytestmark = pytest.mark.anvil  # needs the node tools (npm ci): the sdk's ABIs and the stand-ins' compiler

ABIS = Path(__file__).resolve().parents[3] / "abis" / "perennial_v2"
Entry = dict[str, Any]

# v2.4 as deployed (struct name -> its fields), where the sdk's v2.3 differs.
ORDER_V24_EXTRA = ("protection", "invalidation")  # `invalidation` (uint256) follows `protection`
GUARANTEE_V24 = [("orders", "uint256"), ("notional", "int256"), ("longPos", "uint256"), ("longNeg", "uint256"),
                 ("shortPos", "uint256"), ("shortNeg", "uint256"), ("takerFee", "uint256"),
                 ("orderReferral", "uint256"), ("solverReferral", "uint256")]
ORDER_CREATED_V24 = "0x5e4268eb130bdc972ec0e271b55ee1ff04e99ca5a1375c4f151ba9afad962b4a"
# The stand-in behind each sdk contract.
STAND_IN = {"Market": "market", "MarketFactory": "factory", "Oracle": "oracle", "OracleFactory": "oracle_factory",
            "KeeperOracle": "keeper_oracle", "KeeperFactory": "keeper_factory", "GasOracle": "gas_oracle"}


def shape(params: list[Entry]) -> list:
    """(name, type, components...) of each parameter, recursively: what must match."""
    return [(p.get("name", ""), p["type"], shape(p.get("components", [])), p.get("indexed", False)) for p in params]


def entry_shape(e: Entry) -> tuple:
    return (e["type"], e["name"], shape(e.get("inputs", [])), shape(e.get("outputs", [])))


def as_v24(e: Entry) -> Entry:
    """An sdk (v2.3) entry with v2.4's Order and Guarantee."""
    e = copy.deepcopy(e)

    def fix(params: list[Entry]) -> None:
        for p in params:
            kind = p.get("internalType", "")
            if kind == "struct Order":
                names = [c["name"] for c in p["components"]]
                i = names.index(ORDER_V24_EXTRA[0]) + 1
                p["components"].insert(i, {"internalType": "uint256", "name": ORDER_V24_EXTRA[1], "type": "uint256"})
            elif kind == "struct Guarantee":
                p["components"] = [{"internalType": t, "name": n, "type": t} for n, t in GUARANTEE_V24]
            fix(p.get("components", []))
    fix(e.get("inputs", []))
    fix(e.get("outputs", []))
    return e


def sdk_entry(contract: str, e: Entry) -> Entry:
    matches = [x for x in sdk_abis()[contract] if x.get("name") == e["name"] and x["type"] == e["type"]]
    if e["name"] == "update":
        matches = [x for x in matches if [i["type"] for i in x["inputs"]] == UPDATE_INPUTS]
    assert len(matches) == 1, f"@perennial/sdk {contract} has {len(matches)} entries named {e['name']}"
    return matches[0]


def differences(ours: Entry, reference: Entry) -> list[str]:
    a, b = entry_shape(ours), entry_shape(reference)
    return [] if a == b else [f"{ours['type']} {ours['name']}: ours {a} != published {b}"]


def keeper_file(name: str) -> list[Entry]:
    return json.loads((ABIS / f"{name}.json").read_text())


def v24_names() -> set[tuple[str, str]]:
    return {(file, n) for file, (_, names) in FROM_STAND_IN.items() for n in names}


def used() -> list[tuple[str, str, Entry]]:
    """(keeper file, sdk contract, entry) for every entry of abis/perennial_v2 backed by the sdk."""
    out = []
    for file, (contract, _) in FROM_SDK.items():
        for e in keeper_file(file):
            if (file, e["name"]) in v24_names() and e["name"] == "pyth":
                continue
            out.append((file, contract, e))
    return out


def reference(file: str, contract: str, e: Entry) -> Entry:
    ref = sdk_entry(contract, e)
    return as_v24(ref) if (file, e["name"]) in v24_names() else ref


def test_sdk_is_the_pinned_release():
    assert sdk_version() == "0.0.3-beta.6"


def test_the_keeper_abis_cover_what_the_keeper_uses():
    for file, (contract, names) in FROM_SDK.items():
        got = {e["name"] for e in keeper_file(file)}
        want = set(names) | set(FROM_STAND_IN.get(file, ("", []))[1])
        assert got == want, file


@pytest.mark.parametrize("file,contract,entry", used(), ids=lambda x: x if isinstance(x, str) else x.get("name"))
def test_keeper_abi_matches_the_published_one(file, contract, entry):
    assert differences(entry, reference(file, contract, entry)) == []


async def test_stand_ins_match_the_published_abis():
    arts = await perennial_artifacts()
    problems = []
    for file, contract, e in used():
        stand_in = [x for x in arts[STAND_IN[contract]].abi if x.get("name") == e["name"] and x["type"] == e["type"]]
        if e["name"] == "update":
            stand_in = [x for x in stand_in if [i["type"] for i in x["inputs"]] == UPDATE_INPUTS]
        if len(stand_in) != 1:
            problems.append(f"{STAND_IN[contract]} has {len(stand_in)} {e['name']}")
            continue
        problems += differences(stand_in[0], reference(file, contract, e))
    assert problems == []


async def test_pyth_factory_pyth_is_an_address_view():
    (pyth,) = [e for e in keeper_file("perennial_keeper_factory") if e["name"] == "pyth"]
    assert entry_shape(pyth) == ("function", "pyth", [], [("", "address", [], False)])


def test_order_created_is_the_v24_event_the_facts_name():
    (ev,) = [e for e in keeper_file("perennial_market") if e["name"] == "OrderCreated"]

    def canonical(p: Entry) -> str:
        return "(" + ",".join(canonical(c) for c in p["components"]) + ")" if p["type"] == "tuple" else p["type"]
    sig = f"OrderCreated({','.join(canonical(p) for p in ev['inputs'])})"
    assert "0x" + keccak(text=sig).hex() == ORDER_CREATED_V24


def _structs(params: list[Entry], path: str = ""):
    for i, p in enumerate(params):
        if p.get("components"):
            yield f"{path}{p.get('name') or i}", p
            yield from _structs(p["components"], f"{path}{p.get('name') or i}.")


def mutations() -> list[tuple[str, str, Entry]]:
    """Every struct the keeper decodes or encodes, with two adjacent fields swapped."""
    out = []
    for file, contract, e in used():
        for where in ("inputs", "outputs"):
            for label, p in _structs(e.get(where, [])):
                if len(p["components"]) < 2:
                    continue
                for i in range(len(p["components"]) - 1):
                    moved = copy.deepcopy(e)
                    q = dict(_structs(moved[where]))[label]
                    q["components"][i], q["components"][i + 1] = q["components"][i + 1], q["components"][i]
                    if entry_shape(moved) != entry_shape(e):  # two identical fields swapped change nothing
                        out.append((f"{file}:{e['name']}:{label}[{i}]", contract, moved))
    return out


def test_the_comparison_fails_when_a_struct_field_is_moved():
    cases = mutations()
    names = {c[0].split(":")[1] for c in cases}
    assert {"global", "positions", "locals", "riskParameter", "status", "at", "responses", "parameter",
            "OrderCreated"} <= names
    for label, contract, moved in cases:
        file = label.split(":")[0]
        assert differences(moved, reference(file, contract, moved)), label
