"""manage.py settlement_calc: the auditor's recomputation, with no database."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from fund.models import SettlementCycle

ROOT = Path(__file__).resolve().parents[2]
WORKED = {
    "precision": 8,
    "loss": "500",
    "balance": "1000",
    "fund_ratio": "0.2",
    "screening_ratio": "0.9",
    "positions": [
        {"id": 1, "profit": "600"},
        {"id": 2, "profit": "300"},
        {"id": 3, "profit": "80"},
        {"id": 4, "profit": "20"},
    ],
}


def run(lines: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "settlement_calc", "-"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_it_recomputes_the_worked_example(tmp_path, capsys):
    path = tmp_path / "cycles.jsonl"
    path.write_text(json.dumps(WORKED) + "\n\n" + json.dumps({**WORKED, "loss": "0"}) + "\n")
    call_command("settlement_calc", str(path))
    first, second = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert first == {
        "fund_share": "100.00000000",
        "users_share": "400.00000000",
        "participants": [1, 2],
        "apportionments": {"1": "266.66666667", "2": "133.33333333"},
        "backstop": "0.00000000",
        "uncovered": "0.00000000",
        "total_profit": "1000.00000000",
        "participants_profit": "900.00000000",
        "threshold_profit": "300.00000000",
    }
    assert second["participants"] == [] and second["users_share"] == "0.00000000"


def test_it_reads_standard_input_and_handles_huge_amounts_and_precision_18():
    big = {
        "precision": 18,
        "loss": "1000000000000",
        "balance": "0",
        "fund_ratio": 0,
        "screening_ratio": 1,
        "positions": [
            {"id": 2, "profit": "0.000000000000000001"},
            {"id": 1, "profit": "999999999999"},
        ],
    }
    result = run([json.dumps(big)])
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["participants"] == [1, 2]
    assert out["apportionments"] == {
        "1": "999999999999.000000000000000000",
        "2": "0.000000000000000001",
    }
    assert out["uncovered"] == "0.999999999999999999"


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", "line 2: line: not valid JSON (Expecting value at column 1)"),
        (json.dumps({**WORKED, "loss": "abc"}), "line 2: loss: 'abc' is not a number"),
        (json.dumps({**WORKED, "loss": "NaN"}), "line 2: loss: must be a finite number"),
        (json.dumps(WORKED).replace('"500"', "NaN"), "line 2: loss: NaN is not a number"),
        (json.dumps({**WORKED, "loss": "-1"}), "line 2: loss: must not be negative"),
        (json.dumps({**WORKED, "balance": "-0.1"}), "line 2: balance: must not be negative"),
        (
            json.dumps({**WORKED, "loss": "1.000000001"}),
            "line 2: loss: has more than 8 decimal places",
        ),
        (
            json.dumps({**WORKED, "fund_ratio": "1.5"}),
            "line 2: fund_ratio: must lie between 0 and 1",
        ),
        (
            json.dumps({**WORKED, "screening_ratio": "-0.1"}),
            "line 2: screening_ratio: must lie between 0 and 1",
        ),
        (
            json.dumps(
                {**WORKED, "positions": [{"id": 1, "profit": "1"}, {"id": 1, "profit": "2"}]}
            ),
            "line 2: positions[1].id: duplicate id 1",
        ),
        (
            json.dumps({**WORKED, "positions": [{"id": 1, "profit": "x"}]}),
            "line 2: positions[0].profit: 'x' is not a number",
        ),
        (
            json.dumps({**WORKED, "precision": 19}),
            "line 2: precision: must be a whole number from 0 to 18",
        ),
        (
            json.dumps({k: v for k, v in WORKED.items() if k != "positions"}),
            "line 2: positions: is missing",
        ),
    ],
)
def test_it_names_the_line_and_field_of_bad_input(line, message, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(WORKED) + "\n" + line + "\n"))
    with pytest.raises(CommandError) as exc:
        call_command("settlement_calc", "-")
    assert str(exc.value) == message and exc.value.returncode == 2
    assert capsys.readouterr().out == ""


def test_it_prints_one_line_on_standard_error_and_exits_2_without_a_traceback():
    result = run([json.dumps(WORKED), json.dumps({**WORKED, "loss": "1.000000001"})])
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "CommandError: line 2: loss: has more than 8 decimal places"
    ]


def test_it_reports_a_missing_file():
    with pytest.raises(CommandError, match="No such file"):
        call_command("settlement_calc", "/nonexistent/cycles.jsonl")


@pytest.mark.django_db
def test_it_agrees_with_the_settled_worked_example_in_the_database(usdt_fund, linear, day1, capsys):
    from tests.fund.services.test_settlement_cycle_settle import settle_day
    from tests.helpers import book_loss, deposit, report_profits

    deposit(usdt_fund, "1000")
    book_loss(linear, "500", day1)
    cycle = SettlementCycle.objects.get()
    report_profits(cycle, linear, {1: "600", 2: "300", 3: "80", 4: "20"})
    settle_day(cycle)
    statements = {
        str(a.position.position_id): format(-a.statement.amount, "f")
        for a in cycle.apportionments.select_related("position", "statement__asset")
    }
    run_result = run([json.dumps(WORKED)])
    assert json.loads(run_result.stdout)["apportionments"] == statements


def test_it_keeps_every_digit_at_precision_18():
    line = {
        "precision": 18,
        "loss": "123456789012.123456789012345678",
        "balance": "0",
        "fund_ratio": "0",
        "screening_ratio": "1",
        "positions": [{"id": 1, "profit": "999999999999.999999999999999999"}],
    }
    result = run([json.dumps(line)])
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["users_share"] == "123456789012.123456789012345678"
    assert out["apportionments"] == {"1": "123456789012.123456789012345678"}
