"""The ledger's hash chain: intact books verify; a changed amount, a deleted or a reordered record
is named by `manage.py verify_ledger`; anyone can recompute the chain from the public API."""

from datetime import datetime

import pytest
from rest_framework.test import APIClient

from fund.chain import GENESIS, record_hash
from statements.money import to_units
from tests.helpers import at, book_profit, deposit, tamper
from tests.helpers import verify_ledger_output as verify

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def books(usdt_fund, linear):
    deposit(usdt_fund, "1000", reason="seed | with a pipe")
    for i in range(4):
        book_profit(linear, f"{i + 1}.5", at(0, 3 + i))
    deposit(usdt_fund, "7")
    return usdt_fund


def test_it_verifies_intact_books(books):
    result = verify()
    assert "USDT: 6 records, chain intact" in result and result.endswith("exit 0")


def test_it_names_a_record_whose_amount_was_changed(books):
    tamper(
        "UPDATE fund_fundrecord "
        "SET amount_units = amount_units + 1, balance_after_units = balance_after_units + 1 "
        "WHERE seq = 3"
    )
    assert "BROKEN at record #3" in verify()


def test_it_names_a_deleted_record(books):
    tamper("DELETE FROM fund_fundrecord WHERE seq = 4")
    result = verify()
    assert "BROKEN at record #4" in result and "missing" in result and result.endswith("exit 1")


def test_it_names_reordered_records(books):
    tamper("UPDATE fund_fundrecord SET seq = 100 WHERE seq = 2")
    tamper("UPDATE fund_fundrecord SET seq = 2 WHERE seq = 5")
    tamper("UPDATE fund_fundrecord SET seq = 5 WHERE seq = 100")
    assert "BROKEN at record #2" in verify()


def test_anyone_can_recompute_the_chain_from_the_public_api(books):
    fund = APIClient().get("/api/v1/funds/USDT").data
    records = list(
        reversed(APIClient().get("/api/v1/funds/USDT/records?page_size=100").data["results"])
    )
    previous = GENESIS
    for r in records:
        previous = record_hash(
            previous=previous,
            asset=r["asset"],
            precision=fund["precision"],
            seq=r["seq"],
            kind=r["kind"],
            amount_units=to_units(r["amount"], fund["precision"]),
            balance_after_units=to_units(r["balance_after"], fund["precision"]),
            created_at=datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")),
            takeover=r["takeover"] or "",
            cycle_id=r["cycle"],
            corrects_id=r["corrects"],
            reason=r["reason"],
        )
        assert previous == r["hash"], r["seq"]
    assert previous == fund["chain_head"]


def test_the_standalone_checker_reads_the_public_api_and_names_the_first_bad_record(
    books, live_server
):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "docs" / "check_ledger.py"
    intact = subprocess.run(
        [sys.executable, str(script), live_server.url, "USDT"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert intact.returncode == 0 and "6 records, chain intact" in intact.stdout
    tamper("UPDATE fund_fundrecord SET reason = 'edited' WHERE seq = 1")
    from django.core.cache import cache

    cache.clear()
    broken = subprocess.run(
        [sys.executable, str(script), live_server.url, "USDT"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert broken.returncode == 1 and "record #1" in broken.stdout
