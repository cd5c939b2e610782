"""Each settled cycle publishes a Merkle root; each participant can download an inclusion proof of
their own and check it with docs/check_ledger.py. Form 2 (every profitable position through its
salted commitment) is what cycles settle with now; the tests of form 1 (the apportionments with
their position ids) make their cycle one settled before (as_settled_before), as the cycles of
earlier deployments are. tests/docs/test_check_ledger_cycles.py tests form 2's proofs."""

import json
import random
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from fund.merkle import (
    cycle_leaves,
    leaf_hash,
    leaf_text,
    merkle_path,
    merkle_root,
    position_commitment,
    position_leaves,
    root_from_path,
)
from fund.models import Apportionment, PositionProfit, SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.services.settlement import settlement_cycle_settle
from statements.models import Statement
from tests.fund.test_verify_ledger import tamper
from tests.helpers import as_settled_before, at, book_loss, deposit, report_profits

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "check_ledger.py"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=70, unique=True))
def test_every_leaf_has_a_path_to_the_root_and_any_change_moves_the_root(items):
    leaves = [leaf_hash(item.hex()) for item in items]
    root = merkle_root(leaves)
    for i, leaf in enumerate(leaves):
        assert root_from_path(leaf, merkle_path(leaves, i)) == root
    changed = [*leaves[:-1], leaf_hash("changed")]
    assert merkle_root(changed) != root
    assert merkle_root(leaves[:-1] or [leaf_hash("other")]) != root  # one removed
    assert merkle_root([*leaves, leaves[-1]]) != root  # the last one repeated
    if len(leaves) > 1:
        assert merkle_root([leaves[1], leaves[0], *leaves[2:]]) != root  # two swapped


def test_the_canonical_form_is_the_documented_one():
    text = leaf_text(
        asset="USDT",
        cycle_id=42,
        rank=1,
        position_id=7,
        profit_units=60000000000,
        amount_units=26666666667,
    )
    assert text == "USDT|42|1|7|60000000000|26666666667"
    import hashlib

    a, b, c = (hashlib.sha256(b"\x00" + t.encode()).digest() for t in ("a", "b", "c"))
    ab = hashlib.sha256(b"\x01" + a + b).digest()
    assert (
        merkle_root([leaf_hash("a"), leaf_hash("b"), leaf_hash("c")])
        == hashlib.sha256(b"\x01" + ab + c).hexdigest()
    )
    assert merkle_root([leaf_hash("a")]) == a.hex() and merkle_root([]) == ""


@pytest.mark.django_db
def test_a_settled_cycle_publishes_the_root_of_its_profitable_positions(world):
    rows = (
        PositionProfit.objects.filter(cycle=world.cycle)
        .order_by("-profit_units", "position_id")
        .values_list("position_id", "profit_units", "salt", "apportionment__amount_units")
    )
    assert [(p, profit, amount) for p, profit, _, amount in rows] == [
        (1, 600 * 10**8, 26666666667), (2, 300 * 10**8, 13333333333), (3, 80 * 10**8, None),
        (4, 20 * 10**8, None),
    ]  # fmt: skip
    leaves = position_leaves(
        "USDT",
        world.cycle.id,
        [
            (rank, position_commitment(salt=salt, cycle_id=world.cycle.id, position_id=p),
             profit, amount or 0)
            for rank, (p, profit, salt, amount) in enumerate(rows, start=1)
        ],
    )  # fmt: skip
    assert world.cycle.root_format == 2
    assert world.cycle.apportionment_root == merkle_root(leaves)
    published = APIClient().get(f"/api/v1/cycles/{world.cycle.id}").data
    assert published["apportionment_root"] == world.cycle.apportionment_root
    assert published["root_format"] == 2
    page = APIClient().get(f"/cycles/{world.cycle.id}/").content.decode()
    assert world.cycle.apportionment_root in page


@pytest.mark.django_db
def test_a_cycle_settled_before_keeps_its_root_of_its_apportionments(world):
    as_settled_before(world.cycle)
    rows = (
        Apportionment.objects.filter(cycle=world.cycle)
        .order_by("rank")
        .values_list("rank", "position__position_id", "position__profit_units", "amount_units")
    )
    assert list(rows) == [(1, 1, 600 * 10**8, 26666666667), (2, 2, 300 * 10**8, 13333333333)]
    assert world.cycle.apportionment_root == merkle_root(cycle_leaves("USDT", world.cycle.id, rows))
    out = StringIO()
    call_command("verify_ledger", stdout=out, verbosity=0)
    assert "USDT: 1 settled cycles, totals and Merkle roots match" in out.getvalue()


@pytest.mark.django_db
def test_a_cycle_without_participants_publishes_no_root(usdt_fund, linear):
    deposit(usdt_fund, "1000")
    book_loss(linear, "10", at(0, 10))
    cycle = SettlementCycle.objects.get()
    cycles_close_due(now=cycle.settle_after)
    settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
    cycle.refresh_from_db()
    assert (
        cycle.status == "settled"
        and cycle.participant_count == 0
        and cycle.apportionment_root == ""
    )


@pytest.mark.django_db
def test_every_participant_of_a_large_cycle_gets_a_proof_that_reaches_the_root(usdt_fund, linear):
    rng = random.Random(20261125)
    deposit(usdt_fund, "10")
    book_loss(linear, "5000", at(0, 10))
    cycle = SettlementCycle.objects.get()
    report_profits(
        cycle,
        linear,
        {i: f"{rng.randint(1, 10**6)}.{rng.randint(0, 10**8 - 1):08d}" for i in range(1, 1001)},
    )
    cycles_close_due(now=cycle.settle_after)
    settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
    as_settled_before(cycle)
    from fund.proofs import apportionment_proof

    apportionments = list(
        Apportionment.objects.filter(cycle=cycle).select_related("cycle__fund__asset", "position")
    )
    assert len(apportionments) == cycle.participant_count > 500
    for apportionment in rng.sample(apportionments, 40):
        proof = apportionment_proof(apportionment=apportionment)
        assert proof["leaf"] == leaf_hash(proof["leaf_text"]).hex()
        assert (
            root_from_path(bytes.fromhex(proof["leaf"]), proof["path"])
            == cycle.apportionment_root
            == proof["root"]
        )
        assert len(proof["path"]) <= 10


def proof_of(client, statement_id) -> tuple[dict, str]:
    response = client.get(f"/api/v1/me/statements/{statement_id}/proof")
    assert response.status_code == 200, response.content
    return json.loads(response.content), response["Content-Disposition"]


@pytest.mark.django_db(transaction=True)
def test_a_trader_downloads_their_proof_and_the_standalone_script_checks_it(
    world, live_server, tmp_path
):
    as_settled_before(world.cycle)
    client = APIClient()
    client.force_login(world.trader)
    statement = Statement.objects.get(account__user=world.trader)
    proof, disposition = proof_of(client, statement.id)
    assert (
        disposition
        == f'attachment; filename="apportionment-proof-USDT-cycle-{world.cycle.id}-rank-1.json"'
    )
    assert proof["leaf_text"] == f"USDT|{world.cycle.id}|1|1|60000000000|26666666667"
    assert proof["amount"] == "266.66666667" and proof["root"] == world.cycle.apportionment_root
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))

    def check():  # against the site the trader names, never the proof's own cycle_url
        return subprocess.run(
            [sys.executable, str(SCRIPT), "--proof", str(path), live_server.url],
            capture_output=True,
            text=True,
            timeout=60,
        )

    intact = check()
    assert intact.returncode == 0, intact.stdout + intact.stderr
    # The proof names the cycle under the host the client asked (testserver); the site checked is
    # the one named on the command line, and the script says so.
    assert f"checked against {live_server.url}/api/v1/cycles/{world.cycle.id}" in intact.stderr
    without_site = subprocess.run(
        [sys.executable, str(SCRIPT), "--proof", str(path)], capture_output=True, text=True
    )
    assert without_site.returncode == 1 and "--proof FILE URL" in without_site.stderr
    assert "apportionment of 266.66666667 (rank 1, position 1) is included" in intact.stdout

    smaller = {"amount": "266.66666666", "amount_units": 26666666666}
    path.write_text(json.dumps({**proof, **smaller}))
    altered = check()
    assert altered.returncode == 1 and "leaf_text is not" in altered.stdout
    leaf_text = proof["leaf_text"].replace("|26666666667", "|26666666666")
    path.write_text(json.dumps({**proof, **smaller, "leaf_text": leaf_text}))
    altered = check()
    assert altered.returncode == 1 and "leaf is not the hash" in altered.stdout

    flipped = [
        {**step, "side": "left" if step["side"] == "right" else "right"} for step in proof["path"]
    ]
    path.write_text(json.dumps({**proof, "path": flipped}))
    assert "does not fit its rank" in check().stdout
    path.write_text(json.dumps(proof))
    assert check().returncode == 0

    # The books changed behind the cycle's back: its published root no longer matches what a fresh
    # proof is computed from, and verify_ledger names the cycle.
    tamper("UPDATE fund_apportionment SET amount_units = amount_units - 1 WHERE rank = 1")
    cache.clear()
    path.write_text(json.dumps(proof_of(client, statement.id)[0]))
    assert "path does not lead" in check().stdout
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("verify_ledger", stdout=out, verbosity=0)
    assert (
        f"cycle {world.cycle.id}: its apportionments are not the ones it published"
        in out.getvalue()
    )


@pytest.mark.django_db
def test_a_proof_is_only_for_ones_own_apportionment(world, usdt_fund):
    mine = Statement.objects.get(account__user=world.trader).id
    client = APIClient()
    client.force_login(world.other)
    assert client.get(f"/api/v1/me/statements/{mine}/proof").status_code == 404
    assert APIClient().get(f"/api/v1/me/statements/{mine}/proof").status_code in (401, 403)


@pytest.mark.django_db
def test_the_statement_page_offers_the_proof(world):
    from django.test import Client

    client = Client()
    client.force_login(world.trader)
    statement = Statement.objects.get(account__user=world.trader)
    page = client.get(f"/me/statements/{statement.id}/").content.decode()
    assert (
        f'href="/api/v1/me/statements/{statement.id}/proof"' in page
        and world.cycle.apportionment_root in page
    )


@pytest.mark.django_db
def test_verify_ledger_checks_settled_cycles(world):
    out = StringIO()
    call_command("verify_ledger", stdout=out, verbosity=0)
    assert "USDT: 1 settled cycles, totals and Merkle roots match" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_verify_ledger_names_a_cycle_whose_apportionments_were_swapped(world):
    """Counts and sums still match; only the Merkle root (of form 1) shows the change."""
    as_settled_before(world.cycle)
    tamper(
        "UPDATE fund_apportionment "
        "SET amount_units = CASE rank WHEN 1 THEN 13333333333 ELSE 26666666667 END"
    )
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("verify_ledger", stdout=out, verbosity=0)
    assert (
        f"cycle {world.cycle.id}: its apportionments do not give the published Merkle root"
        in out.getvalue()
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.sampled_from([1, 2, 4, 8, 16]), st.data())
def test_a_path_from_blocks_is_the_path_through_the_whole_tree(n, block, data):
    from fund.merkle import block_roots, merkle_path_in_blocks

    leaves = [leaf_hash(str(i)) for i in range(n)]
    roots = block_roots(leaves, block)
    assert merkle_root(roots) == merkle_root(leaves)
    for index in data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=10)):
        start = index - index % block
        assert merkle_path_in_blocks(
            leaves[start : start + block], index, roots, block
        ) == merkle_path(leaves, index)


@pytest.mark.django_db
def test_proofs_of_a_cycle_larger_than_a_block_reach_the_root(usdt_fund, linear, monkeypatch):
    """The proof is computed from the leaf's block and the cycle's block roots (kept in the
    cache)."""
    import fund.proofs as proofs

    monkeypatch.setattr(proofs, "BLOCK", 64)
    deposit(usdt_fund, "10")
    book_loss(linear, "5000", at(0, 10))
    cycle = SettlementCycle.objects.get()
    report_profits(cycle, linear, {i: str(1000 + (i * 7919) % 1009) for i in range(1, 301)})
    cycles_close_due(now=cycle.settle_after)
    settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
    as_settled_before(cycle)
    apportionments = Apportionment.objects.filter(cycle=cycle).select_related(
        "cycle__fund__asset", "position"
    )
    for apportionment in apportionments.order_by("rank"):
        proof = proofs.apportionment_proof(apportionment=apportionment)
        assert (
            root_from_path(bytes.fromhex(proof["leaf"]), proof["path"]) == cycle.apportionment_root
        )
        assert proof["participant_count"] == cycle.participant_count
    assert cache.get(f"merkle-blocks:64:{cycle.id}:{cycle.apportionment_root}") is not None


@pytest.mark.django_db(transaction=True)
def test_verify_ledger_names_swapped_apportionments_of_a_cycle_of_form_2(world):
    tamper(
        "UPDATE fund_apportionment "
        "SET amount_units = CASE rank WHEN 1 THEN 13333333333 ELSE 26666666667 END"
    )
    tamper("UPDATE fund_positionprofit SET salt = %s WHERE position_id = 4", [b"\x01" * 16])
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("verify_ledger", stdout=out, verbosity=0)
    assert f"cycle {world.cycle.id}: its apportionments are not the ones it published" in (
        out.getvalue()
    )
    assert (
        f"cycle {world.cycle.id}: its ranked positions do not give the published Merkle root"
        in (out.getvalue())
    )


def test_the_worked_example_of_form_2_is_the_documented_one():
    """docs/rules.md §6.3's table and root, recomputed."""
    from fund.merkle import position_leaf_text

    rules = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text()
    rows = [(1, 7044516, 60000000000, 26666666667), (2, 7044517, 30000000000, 13333333333),
            (3, 7044518, 8000000000, 0), (4, 7044519, 2000000000, 0)]  # fmt: skip
    leaves = []
    for rank, position, profit, amount in rows:
        salt = bytes(range(16 * (rank - 1), 16 * rank))
        commitment = position_commitment(salt=salt, cycle_id=42, position_id=position)
        text = position_leaf_text(asset="USDT", cycle_id=42, rank=rank, commitment=commitment,
                                  profit_units=profit, amount_units=amount)  # fmt: skip
        leaves.append(leaf_hash(text))
        assert commitment in rules and leaves[-1].hex() in rules
    assert merkle_root(leaves) in rules
