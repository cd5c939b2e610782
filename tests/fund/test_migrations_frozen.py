"""Migrations are history: they import only Django and the standard library, and the canonical
forms they carry (frozen copies) compute what the live code computes today."""

import ast
import importlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fund import chain, merkle

ROOT = Path(__file__).resolve().parents[2]
APP_PACKAGES = {"fund", "statements", "config"}
MIGRATIONS = sorted([*ROOT.glob("fund/migrations/*.py"), *ROOT.glob("statements/migrations/*.py")])

chain_0009 = importlib.import_module("fund.migrations.0009_record_hash_chain")
merkle_0010 = importlib.import_module("fund.migrations.0010_cycle_apportionment_root")


def imported_modules(tree):
    for node in ast.walk(tree):  # nested imports (inside functions) count too
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield "." * node.level + (node.module or "")


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_it_imports_nothing_from_the_application(path):
    names = list(imported_modules(ast.parse(path.read_text(), filename=str(path))))
    app_imports = [n for n in names if n.startswith(".") or n.split(".")[0] in APP_PACKAGES]
    assert app_imports == []


def test_it_finds_the_migrations():
    assert {"0009_record_hash_chain.py", "0010_cycle_apportionment_root.py"} <= {
        p.name for p in MIGRATIONS
    }


RECORDS = [
    {"asset": "USDT", "precision": 6, "seq": 1, "kind": "deposit", "amount_units": 1_500_000},
    {"asset": "BTC", "precision": 8, "seq": 2, "kind": "withdrawal", "amount_units": -1},
    {"asset": "JPY", "precision": 0, "seq": 3, "kind": "profit", "amount_units": 0},
    {"asset": "ETH", "precision": 12, "seq": 40, "kind": "loss", "amount_units": -(10**18 - 1)},
    {
        "asset": "EUR",
        "precision": 2,
        "seq": 7,
        "kind": "correction",
        "amount_units": -5,
        "takeover": "tk-42",
        "cycle_id": 9,
        "corrects_id": 3,
        "reason": 'Korrektur – €5 «doppelt» 日本 😀 "quoted"\n',
    },
    {
        "asset": "USDT",
        "precision": 6,
        "seq": 8,
        "kind": "apportionment",
        "amount_units": 7,
        "takeover": None,
        "cycle_id": 0,
        "corrects_id": None,
        "reason": None,
    },
]
WHEN = [
    datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    datetime(2026, 6, 30, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
]


@pytest.mark.parametrize("record", RECORDS)
@pytest.mark.parametrize("created_at", WHEN)
def test_it_keeps_the_record_hash_of_0009(record, created_at):
    previous_frozen = previous_live = chain.GENESIS
    assert chain_0009._GENESIS == chain.GENESIS
    for step in range(2):  # chained: the second hash covers the first
        args = {**record, "balance_after_units": 10**9 + step, "created_at": created_at}
        previous_frozen = chain_0009._record_hash(previous=previous_frozen, **args)
        previous_live = chain.record_hash(previous=previous_live, **args)
        assert previous_frozen == previous_live


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5, 7, 8, 33])
def test_it_keeps_the_merkle_root_of_0010(count):
    rows = [(rank, 7_044_516 + rank * 31, rank * 10**10, -rank) for rank in range(1, count + 1)]
    frozen = merkle_0010._cycle_leaves("USDT", 42, iter(rows))
    live = merkle.cycle_leaves("USDT", 42, iter(rows))
    assert frozen == live
    assert merkle_0010._merkle_root(frozen) == merkle.merkle_root(live)
    assert (merkle.merkle_root(live) == "") == (count == 0)


@given(
    takeover=st.text(max_size=20),
    reason=st.text(max_size=40),
    asset=st.text(alphabet="ABCDEFXYZ019.-_ ", min_size=1, max_size=8),
    kind=st.text(max_size=12),
)
def test_any_text_hashes_as_0009_hashed_it(takeover, reason, asset, kind):
    args = {
        "asset": asset,
        "precision": 8,
        "seq": 5,
        "kind": kind,
        "amount_units": -12,
        "balance_after_units": 10**12,
        "created_at": WHEN[1],
        "takeover": takeover,
        "cycle_id": 3,
        "corrects_id": None,
        "reason": reason,
    }
    frozen = chain_0009._record_hash(previous=chain.GENESIS, **args)
    assert chain.record_hash(previous=chain.GENESIS, **args) == frozen
