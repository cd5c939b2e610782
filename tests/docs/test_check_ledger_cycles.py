"""A cycle anyone can recompute: each settled cycle publishes its inputs, anonymised (its system
losses; its profitable positions by rank, each as a salted commitment with its profit and
apportionment), and docs/check_ledger.py --cycle recomputes the whole settlement from them with
its own code (not the site's), rebuilds the Merkle root and names any figure, amount or input
that does not hold. Every trader with a profitable position, apportioned or not, can download its
proof (form 2); cycles settled before (form 1) keep their roots and stay checkable."""

import copy
import importlib.util
import json
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.test import Client

from fund.models import Fund, PositionProfit, SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.services.settlement import settlement_cycle_settle
from statements.models import TraderAccount
from tests.factories import UserFactory
from tests.helpers import (
    FakeSite,
    as_settled_before,
    at,
    book_loss,
    book_profit,
    client_for,
    deposit,
    report_many_profits,
    report_profits,
)

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "check_ledger.py"
_spec = importlib.util.spec_from_file_location("check_ledger", SCRIPT)
check_ledger = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_ledger)


def run_script(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=300
    )


def published(cycle_id: int) -> tuple[dict, list[dict], list[dict]]:
    """The cycle, its losses and its positions as the public API serves them."""
    client = Client()
    cycle = client.get(f"/api/v1/cycles/{cycle_id}").json()

    def lines(path):
        answer = client.get(path)
        assert answer.status_code == 200, answer
        assert answer["Content-Type"] == "application/jsonl; charset=utf-8"
        return [json.loads(line) for line in b"".join(answer.streaming_content).splitlines()]

    return (
        cycle,
        lines(f"/api/v1/cycles/{cycle_id}/losses"),
        lines(f"/api/v1/cycles/{cycle_id}/positions"),
    )


def recompute(cycle_id: int, places: int = 8, mutate=None) -> tuple[list[str], str]:
    cycle, losses, positions = published(cycle_id)
    if mutate:
        mutate(cycle, losses, positions)
    return check_ledger.recompute_cycle(cycle, places, iter(losses), iter(positions))


def settle(cycle) -> SettlementCycle:
    cycles_close_due(now=cycle.settle_after)
    settlement_cycle_settle(cycle_id=cycle.id, now=cycle.settle_after)
    cycle.refresh_from_db()
    assert cycle.status == "settled"
    return cycle


def units(rng, low, high) -> str:
    return f"{rng.randint(low, high)}.{rng.randint(0, 99_999_999):08d}"


def test_a_hundred_generated_cycles_recompute_exactly(usdt_fund, linear):
    """Cycles of every shape: ties, tiny and huge losses, a fund too poor for its share (the
    backstop and the uncovered rest), no loss, no profit, other ratios."""
    rng = random.Random(12)
    deposit(usdt_fund, "50000")
    shapes = set()
    for day in range(100):
        fund_ratio, screening = rng.choice(
            [("0.2000", "0.9000"), ("0", "1"), ("1", "0.5000"), ("0.3333", "0.0001")]
        )
        Fund.objects.filter(pk=usdt_fund.pk).update(
            fund_ratio=Decimal(fund_ratio), screening_ratio=Decimal(screening)
        )
        for _ in range(rng.choice([0, 1, 1, 2, 5])):
            book_loss(linear, units(rng, 0, rng.choice([10, 1000, 200_000])), at(day, 3))
        if rng.random() < 0.3:
            book_profit(linear, units(rng, 1, 500), at(day, 4))
        book_profit(linear, "0.00000001", at(day, 5))  # every day has its cycle
        cycle = SettlementCycle.objects.get(starts_at=at(day))
        tie = units(rng, 1, 100)
        profits = {
            day * 1000 + n + 1: rng.choice([tie, units(rng, 0, 5000), "-3", "0", units(rng, 0, 2)])
            for n in range(rng.choice([0, 1, 2, 7, 40]))
        }
        if profits:
            report_profits(cycle, linear, profits, account_prefix=f"d{day}")
        cycle = settle(cycle)
        shapes.add((cycle.backstop_units > 0, cycle.uncovered_units > 0, cycle.loss_units == 0))
        differences, summary = recompute(cycle.id)
        assert differences == [], (cycle.id, differences)
        assert f"cycle {cycle.id}: recomputed from" in summary
    assert len(shapes) >= 3, shapes  # the fund ran dry at times, and some cycles had no loss


@pytest.fixture
def settled(usdt_fund, linear):
    """One settled cycle: two losses, six profitable positions (two tied), two unprofitable."""
    deposit(usdt_fund, "1000")
    book_loss(linear, "300", at(0, 10))
    book_loss(linear, "200", at(0, 11))
    cycle = SettlementCycle.objects.get(starts_at=at(0))
    report_profits(
        cycle, linear, {1: "600", 2: "300", 3: "300", 4: "80", 5: "20", 6: "1", 7: "0", 8: "-5"}
    )
    return settle(cycle)


def test_the_inputs_name_no_one(settled):
    cycle, losses, positions = published(settled.id)
    assert losses == [
        {"contract": "BTCUSDT", "closed_at": "2026-11-01T10:00:00.000000Z", "loss": "300.00000000"},
        {"contract": "BTCUSDT", "closed_at": "2026-11-01T11:00:00.000000Z", "loss": "200.00000000"},
    ] or [row["loss"] for row in losses] == ["300.00000000", "200.00000000"]
    assert [set(row) for row in positions] == [{"rank", "commitment", "profit", "amount"}] * 6
    assert [(r["rank"], r["profit"]) for r in positions][:3] == [
        (1, "600.00000000"), (2, "300.00000000"), (3, "300.00000000"),
    ]  # fmt: skip
    text = json.dumps(positions) + json.dumps(losses)
    assert "acct" not in text and "position_id" not in text
    salts = {bytes(s) for s in PositionProfit.objects.values_list("salt", flat=True)}
    assert len(salts) == 8 and all(len(s) == 16 for s in salts)
    assert not any(s.hex() in text for s in salts)
    assert cycle["root_format"] == 2


def test_the_inputs_as_csv(settled):
    answer = Client().get(f"/api/v1/cycles/{settled.id}/positions", {"format": "csv"})
    lines = b"".join(answer.streaming_content).decode().splitlines()
    assert lines[0] == "rank,commitment,profit,amount" and len(lines) == 7
    assert answer["Content-Type"] == "text/csv; charset=utf-8"
    answer = Client().get(f"/api/v1/cycles/{settled.id}/losses", {"format": "csv"})
    assert b"".join(answer.streaming_content).decode().splitlines()[0] == "contract,closed_at,loss"


def test_an_unsettled_cycle_publishes_no_inputs(usdt_fund, linear):
    book_loss(linear, "5", at(0, 1))
    cycle = SettlementCycle.objects.get()
    for path in ("losses", "positions"):
        answer = Client().get(f"/api/v1/cycles/{cycle.id}/{path}")
        assert answer.status_code == 404
        assert "not settled" in answer.content.decode()
    assert Client().get("/api/v1/cycles/999999/positions").status_code == 404


def _set(where, key, value):
    def mutate(cycle, losses, positions):
        {"cycle": cycle, "loss": losses[0], "rank 2": positions[1], "rank 6": positions[5]}[where][
            key
        ] = value

    return mutate


def _swap_ranks(cycle, losses, positions):
    positions[0]["commitment"], positions[1]["commitment"] = (
        positions[1]["commitment"],
        positions[0]["commitment"],
    )


@pytest.mark.parametrize(
    "mutate, named",
    [
        (_set("loss", "loss", "299.00000000"), "L, the loss: the cycle publishes 500.00000000"),
        (lambda c, losses, p: losses.pop(), "L, the loss"),
        (lambda c, losses, p: losses.append(dict(losses[0])), "L, the loss"),
        (_set("rank 2", "profit", "301.00000000"), "P, the total profit"),
        (_set("rank 2", "amount", "133.33333334"), "rank 2: the apportionment published is "
         "133.33333334"),
        (_set("rank 6", "amount", "0.00000001"), "rank 6: the apportionment published is "
         "0.00000001, the rules give 0.00000000"),
        (_set("rank 2", "commitment", "ab" * 32), "the Merkle root"),
        (_swap_ranks, "the Merkle root"),
        (lambda c, losses, positions: positions.pop(), "the number of profitable positions"),
        (_set("cycle", "fund_share", "99.00000000"),
         "F, the fund's share: the cycle publishes 99.00000000, its inputs give 100.00000000"),
        (_set("cycle", "users_share", "401.00000000"), "U, the users' share"),
        (_set("cycle", "total_profit", "1.00000000"), "P, the total profit"),
        (_set("cycle", "participants_profit", "1.00000000"), "S, the participants' profit"),
        (_set("cycle", "threshold_profit", "1.00000000"), "the threshold profit"),
        (_set("cycle", "apportioned", "1.00000000"), "the apportioned total"),
        (_set("cycle", "backstop", "1.00000000"), "the backstop"),
        (_set("cycle", "uncovered", "1.00000000"), "the uncovered rest"),
        (_set("cycle", "participant_count", 5), "the number of participants"),
        (_set("cycle", "participant_count", 3.0), "the number of participants"),
        (_set("cycle", "profitable_count", 7), "the number of profitable positions"),
        (_set("cycle", "fund_ratio", "0.2500"), "F, the fund's share"),
        (_set("cycle", "screening_ratio", "0.5000"), "S, the participants' profit"),
        (_set("cycle", "balance_before", "50.00000000"), "F, the fund's share"),
        (_set("cycle", "apportionment_root", "cd" * 32), "the Merkle root"),
    ],
)  # fmt: skip
def test_any_single_changed_input_or_figure_is_named(settled, mutate, named):
    differences, _ = recompute(settled.id, mutate=mutate)
    assert any(named in d for d in differences), differences


@pytest.mark.parametrize(
    "mutate, message",
    [
        (_set("rank 2", "rank", 5), "position row 2 has the rank 5"),
        (_set("rank 6", "profit", "0.00000000"), "rank 6 has no profit"),
        (_set("loss", "loss", "0.00000000"), "loss 1 is not a loss"),
        (_set("rank 6", "profit", "900.00000000"), "rank 6 has more profit than rank 5"),
        (_set("rank 2", "rank", 2.0), "position row 2 has the rank 2.0"),
        (_set("rank 2", "rank", True), "position row 2 has the rank True"),
        (
            lambda c, losses, positions: positions[3].update(commitment=positions[2]["commitment"]),
            "rank 4's commitment repeats an earlier rank's",
        ),
    ],
)
def test_inputs_out_of_shape_are_broken(settled, mutate, message):
    with pytest.raises(check_ledger.Broken, match=message):
        recompute(settled.id, mutate=mutate)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (_set("rank 2", "profit", 3), "rank 2's profit is the number 3"),
        (_set("rank 2", "commitment", None), "rank 2's commitment is null"),
        (_set("cycle", "fund_ratio", "1.5"), "the fund ratio is 1.5, more than 1"),
        (_set("cycle", "fund_ratio", "0.2"), None),
        (_set("loss", "loss", "1e3"), "loss 1 is the text '1e3'"),
        (_set("rank 2", "amount", "\u0661.00000000"), "rank 2's amount"),
        (_set("cycle", "root_format", 3), "root_format is the number 3"),
        (_set("cycle", "root_format", "2"), "root_format is the text '2'"),
        (_set("cycle", "root_format", True), "root_format is true"),
        (_set("cycle", "root_format", None), "root_format is null"),
    ],
)
def test_malformed_inputs_are_named(settled, mutate, message):
    if message is None:  # another writing of the same ratio: the same settlement
        assert recompute(settled.id, mutate=mutate)[0] == []
        return
    with pytest.raises(check_ledger.SiteFailure, match=message):
        recompute(settled.id, mutate=mutate)


@pytest.fixture
def site():
    site = FakeSite()
    yield site
    site.server.shutdown()


def serve_cycle(site, cycle_id: int) -> None:
    seq = Client().get(f"/api/v1/cycles/{cycle_id}").json()["balance_seq"]
    site.take(
        f"/api/v1/cycles/{cycle_id}",
        "/api/v1/funds/USDT",
        f"/api/v1/cycles/{cycle_id}/losses",
        f"/api/v1/cycles/{cycle_id}/positions",
        f"/api/v1/funds/USDT/records/{seq}",
        f"/api/v1/funds/USDT/records/{seq + 1}",
    )


def test_the_script_recomputes_a_cycle_from_the_site(settled, site):
    serve_cycle(site, settled.id)
    run = run_script("--cycle", settled.id, site.url)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith(f"USDT cycle {settled.id}: recomputed from 2 losses and 6 ")
    assert f"the root {settled.apportionment_root} rebuilt" in run.stdout
    assert "B and the fund's payment match ledger records #1 and on" in run.stdout
    # One changed apportionment on the site: named, exit 1.
    path = f"/api/v1/cycles/{settled.id}/positions"
    rows = site.answers[path][1].decode().splitlines()
    row = json.loads(rows[1])
    row["amount"] = "133.33333334"
    rows[1] = json.dumps(row)
    site.answers[path] = (200, ("\n".join(rows) + "\n").encode())
    run = run_script("--cycle", settled.id, site.url)
    assert run.returncode == 1
    assert "BROKEN" in run.stdout and "rank 2: the apportionment published is 133.33333334" in (
        run.stdout
    )


@pytest.mark.parametrize("args", [["--cycle"], ["--cycle", "x", "http://a"], ["--cycle", "0", "u"],
                                  ["--cycle", "\u0661", "http://a"]])  # fmt: skip
def test_bad_cycle_arguments(args):
    run = run_script(*args)
    assert run.returncode == 1 and "Traceback" not in run.stderr


def test_a_cycle_of_100000_positions_recomputes_exactly(usdt_fund, linear, site):
    deposit(usdt_fund, "1000")
    book_loss(linear, "250000", at(0, 10))
    cycle = SettlementCycle.objects.get()
    rng = random.Random(3)
    report_many_profits(cycle, linear, {p: units(rng, 0, 5000) for p in range(1, 100_001)})
    cycle = settle(cycle)
    assert cycle.profitable_count > 99_000
    serve_cycle(site, cycle.id)
    run = run_script("--cycle", cycle.id, site.url)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{cycle.profitable_count} profitable positions" in run.stdout


def _record(seq):
    return Client().get(f"/api/v1/funds/USDT/records/{seq}").json()


def test_b_and_the_funds_payment_are_found_in_the_ledger(settled):
    cycle = Client().get(f"/api/v1/cycles/{settled.id}").json()
    assert cycle["balance_seq"] == 1  # the deposit; the coverage is record #2
    assert check_ledger.anchor_problems(cycle, 8, _record)[0] == []
    # A site that settled from another B (and made every figure follow from it): named.
    forged = {**cycle, "balance_before": "0.00000000"}
    assert check_ledger.anchor_problems(forged, 8, _record)[0] == [
        "B: the cycle publishes 0.00000000, the balance after record #1 is 1000.00000000"
    ]
    forged = {**cycle, "fund_share": "50.00000000"}
    assert (
        "the fund's payment: record #2 is not this cycle's coverage of -50.00000000"
        in (check_ledger.anchor_problems(forged, 8, _record)[0][0])
    )
    forged = {**cycle, "balance_seq": 0}
    assert "yet the fund had no record" in check_ledger.anchor_problems(forged, 8, _record)[0][0]
    for bad in ("1", -1, 1.0, True):
        with pytest.raises(check_ledger.SiteFailure):
            check_ledger.anchor_problems({**cycle, "balance_seq": bad}, 8, _record)


def test_a_cycle_settled_before_keeps_its_root_and_stays_checkable(settled):
    as_settled_before(settled)
    differences, summary = recompute(settled.id)
    assert differences == []
    assert "its root (form 1, settled before the inputs were published)" in summary
    cycle, _, positions = published(settled.id)
    assert cycle["root_format"] == 1 and {r["commitment"] for r in positions} == {None}


# A trader's own proof, apportioned or not.


def own(position_id: int):
    user = UserFactory()
    TraderAccount.objects.filter(external_id=f"acct-{position_id}").update(user=user)
    return client_for(user)


def position_proof(client, position_id: int) -> dict:
    listed = client.get("/api/v1/me/positions").json()["results"]
    (mine,) = [p for p in listed if p["position_id"] == position_id]
    answer = client.get(mine["proof_url"])
    assert answer.status_code == 200, answer.content
    assert answer["Cache-Control"] == "private, no-store"
    return answer.json()


@pytest.mark.parametrize("position_id, participant", [(1, True), (3, True), (5, False), (6, False)])
def test_participants_and_others_prove_their_position(settled, site, tmp_path, position_id,
                                                      participant):  # fmt: skip
    proof = position_proof(own(position_id), position_id)
    assert proof["participant"] is participant
    assert proof["format"] == "insurance-fund-position-proof/2"
    serve_cycle(site, settled.id)
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    run = run_script("--proof", path, site.url)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"position {position_id} (rank {proof['rank']} of 6" in run.stdout
    assert ("below the threshold" in run.stdout) is not participant


def test_the_statement_proof_of_a_form_2_cycle_is_the_position_proof(settled):
    client = own(1)
    statement = client.get("/api/v1/me/statements").json()["results"][0]
    proof = client.get(f"/api/v1/me/statements/{statement['id']}/proof").json()
    assert proof["format"] == "insurance-fund-position-proof/2" and proof["position_id"] == 1


def test_only_my_profitable_positions_in_settled_cycles(settled):
    client = own(7)  # profit 0: not in the root
    assert client.get("/api/v1/me/positions").json()["results"] == []
    other = PositionProfit.objects.get(position_id=1)
    assert client.get(f"/api/v1/me/positions/{other.id}/proof").status_code == 404
    assert Client().get(f"/api/v1/me/positions/{other.id}/proof").status_code in (401, 403)


def _forge(name):
    def forge(proof):
        if name == "salt":
            proof["salt"] = "00" * 16
        elif name == "commitment":
            proof["commitment"] = "ab" * 32
        elif name == "amount":
            proof["amount"], proof["amount_units"] = "1.00000000", 100_000_000
        elif name == "participant":
            proof["participant"] = not proof["participant"]
        elif name == "truncated":
            proof["path"].pop()
        elif name == "extended":
            proof["path"].append({"side": "right", "hash": "ab" * 32})
        elif name == "rank":
            proof["rank"] += 1
        elif name == "count":
            proof["profitable_count"] += 1
        elif name == "root":
            proof["root"] = "cd" * 32

    return forge


@pytest.mark.parametrize(
    "name", ["salt", "commitment", "amount", "participant", "truncated", "extended", "rank",
             "count", "root"],
)  # fmt: skip
def test_a_forged_position_proof_is_refused(settled, site, tmp_path, name):
    proof = copy.deepcopy(position_proof(own(5), 5))
    _forge(name)(proof)
    serve_cycle(site, settled.id)
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    run = run_script("--proof", path, site.url)
    assert run.returncode == 1, run.stdout
    assert "BROKEN" in run.stdout and "Traceback" not in run.stderr
