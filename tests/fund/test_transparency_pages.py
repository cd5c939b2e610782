"""The pages say in plain words how to check the books: the fund page shows its latest signed
checkpoint and how to monitor it, the rules and the FAQ explain checkpoints and recomputing a
cycle, each cycle report links its inputs and the command that recomputes it, and traders find
the proof of every profitable position, apportioned or not."""

import hashlib
from pathlib import Path

import pytest
from django.test import Client

from fund.models import LogCheckpoint, PositionProfit
from fund.services.transparency import checkpoint_sign
from statements.models import TraderAccount
from tests.factories import UserFactory
from tests.fund.test_transparency_log import VKEY
from tests.helpers import as_settled_before, deposit

SCRIPT_SHA256 = hashlib.sha256(
    (Path(__file__).resolve().parents[2] / "docs" / "check_ledger.py").read_bytes()
).hexdigest()


def page(path: str, user=None) -> str:
    client = Client()
    if user is not None:
        client.force_login(user)
    answer = client.get(path)
    assert answer.status_code == 200, (path, answer.status_code)
    return answer.content.decode()


@pytest.mark.django_db(transaction=True)  # the page cache moves on when the books commit
def test_the_fund_page_shows_its_latest_checkpoint_and_how_to_monitor_it(usdt_fund):
    assert "No checkpoint of this fund" in page("/funds/USDT/")
    deposit(usdt_fund, "10")
    checkpoint = checkpoint_sign(fund=usdt_fund)
    html = page("/funds/USDT/")
    assert "<strong>1 record</strong>" in html  # the page cache moved on with the checkpoint
    import base64

    assert base64.b64encode(bytes.fromhex(checkpoint.root_hash)).decode() in html
    assert "python3 check_ledger.py --monitor usdt-monitor.json http://testserver" in html
    assert f"--asset USDT --vkey {VKEY}" in html
    assert SCRIPT_SHA256 in html
    for link in ('href="/check_ledger.py"', 'href="/log/USDT/checkpoint"', 'href="/log/vkey"'):
        assert link in html
    deposit(usdt_fund, "1")
    checkpoint_sign(fund=usdt_fund)
    assert "<strong>2 records</strong>" in page("/funds/USDT/")
    assert LogCheckpoint.objects.count() == 2


def test_the_rules_and_the_faq_explain_checkpoints_and_recomputing(db):
    rules = page("/rules/")
    for words in ("Signed checkpoints", "--monitor state.json", "--cycle ID http://testserver",
                  "consistency proof", "commitment", SCRIPT_SHA256, VKEY):  # fmt: skip
        assert words in rules, words
    faq = page("/faq/")
    assert "What is a signed checkpoint" in faq and "Can I recompute a whole cycle?" in faq
    assert SCRIPT_SHA256 in faq and "docs/</code> folder" not in faq + rules


def test_a_cycle_report_links_its_inputs_and_the_command(world):
    html = page(f"/cycles/{world.cycle.id}/")
    assert f'href="/api/v1/cycles/{world.cycle.id}/losses"' in html
    assert f'href="/api/v1/cycles/{world.cycle.id}/positions?format=csv"' in html
    assert f"python3 check_ledger.py --cycle {world.cycle.id} http://testserver" in html
    assert "Merkle root over all 4 profitable positions" in html
    as_settled_before(world.cycle)
    html = page(f"/cycles/{world.cycle.id}/")
    assert "settled before the inputs were published" in html


def test_my_positions_offers_a_proof_for_every_profitable_position(world):
    html = page("/me/positions/", world.trader)  # position 1: a participant
    (mine,) = PositionProfit.objects.filter(account__user=world.trader)
    assert f'href="/api/v1/me/positions/{mine.id}/proof"' in html
    assert 'href="/me/positions/"' in html  # in the menu
    below = UserFactory()  # position 3: below the threshold, apportioned nothing
    TraderAccount.objects.filter(external_id="acct-3").update(user=below)
    html = page("/me/positions/", below)
    third = PositionProfit.objects.get(position_id=3)
    assert f'href="/api/v1/me/positions/{third.id}/proof"' in html
    assert "0 (below the threshold)" in html
    assert f"/api/v1/me/positions/{mine.id}/proof" not in html
    assert Client().get("/me/positions/").status_code == 302  # to the login page


def test_the_statement_page_explains_the_proof_of_its_form(world):
    statement = world.trader.trader_account.statements.get()
    html = page(f"/me/statements/{statement.id}/", world.trader)
    assert "over all its 4 profitable positions" in html
    assert 'href="/me/positions/"' in html and 'href="/check_ledger.py"' in html


def test_a_trader_without_positions_sees_so(db):
    user = UserFactory()
    TraderAccount.objects.create(external_id="lonely", user=user)
    assert "No profitable position of yours" in page("/me/positions/", user)
