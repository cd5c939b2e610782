"""Recomputes settlements from plain inputs, touching no database (docs/rules.md §2).

    python manage.py settlement_calc cycles.jsonl      # or - for standard input

Each input line: {"precision": 8, "loss": "500", "balance": "1000", "fund_ratio": "0.2",
"screening_ratio": "0.9", "positions": [{"id": 1, "profit": "600"}, …]}.
Each output line: the fund's and users' shares, participants in rank order, each participant's
apportionment, backstop, uncovered loss, P, S and the threshold profit, as decimal strings.
"""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from fund.computation import compute_settlement
from statements.money import JSONNumber, MoneyError, format_units, parse_decimal, to_units

MAX_PRECISION = 18


class InputError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")


class _Constant(str):
    """NaN or Infinity written bare in the JSON; refused by the field that holds it."""

    def __repr__(self):
        return str(self)


def _constant(name):
    return _Constant(name)


def _amount(raw, field, precision):
    if isinstance(raw, _Constant):
        raise InputError(field, f"{raw} is not a number")
    try:
        units = to_units(raw, precision, limit=None)
    except MoneyError as exc:
        raise InputError(field, str(exc)) from None
    return units


def _ratio(raw, field):
    if isinstance(raw, _Constant):
        raise InputError(field, f"{raw} is not a number")
    try:
        value = parse_decimal(raw)
    except MoneyError as exc:
        raise InputError(field, str(exc)) from None
    if not 0 <= value <= 1:
        raise InputError(field, "must lie between 0 and 1")
    return value


def parse_cycle(line: str) -> dict:
    """One input line, checked field by field; raises InputError naming the field."""
    try:
        data = json.loads(line, parse_float=JSONNumber, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise InputError("line", f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(data, dict):
        raise InputError("line", "must be a JSON object")
    for key in ("precision", "loss", "balance", "fund_ratio", "screening_ratio", "positions"):
        if key not in data:
            raise InputError(key, "is missing")
    precision = data["precision"]
    if (
        isinstance(precision, bool)
        or not isinstance(precision, int)
        or not 0 <= precision <= MAX_PRECISION
    ):
        raise InputError("precision", f"must be a whole number from 0 to {MAX_PRECISION}")
    loss, balance = (
        _amount(data["loss"], "loss", precision),
        _amount(data["balance"], "balance", precision),
    )
    for name, value in (("loss", loss), ("balance", balance)):
        if value < 0:
            raise InputError(name, "must not be negative")
    if not isinstance(data["positions"], list):
        raise InputError("positions", "must be a list")
    positions, seen = [], set()
    for index, position in enumerate(data["positions"]):
        field = f"positions[{index}]"
        if not isinstance(position, dict) or "id" not in position or "profit" not in position:
            raise InputError(field, 'must be an object with "id" and "profit"')
        position_id = position["id"]
        if isinstance(position_id, bool) or not isinstance(position_id, int) or position_id < 0:
            raise InputError(f"{field}.id", "must be a whole number of at least 0")
        if position_id in seen:
            raise InputError(f"{field}.id", f"duplicate id {position_id}")
        seen.add(position_id)
        positions.append((position_id, _amount(position["profit"], f"{field}.profit", precision)))
    return {
        "precision": precision,
        "loss": loss,
        "balance": balance,
        "fund_ratio": _ratio(data["fund_ratio"], "fund_ratio"),
        "screening_ratio": _ratio(data["screening_ratio"], "screening_ratio"),
        "positions": positions,
    }


def settle_line(cycle: dict) -> dict:
    precision = cycle.pop("precision")
    result = compute_settlement(**cycle)
    fmt = lambda units: format_units(units, precision)  # noqa: E731
    return {
        "fund_share": fmt(result.fund_share),
        "users_share": fmt(result.users_share),
        "participants": result.participants,
        "apportionments": {str(pid): fmt(a) for pid, a in zip(result.participants, result.amounts)},
        "backstop": fmt(result.backstop),
        "uncovered": fmt(result.uncovered),
        "total_profit": fmt(result.total_profit),
        "participants_profit": fmt(result.participants_profit),
        "threshold_profit": fmt(result.threshold_profit),
    }


class Command(BaseCommand):
    help = "Recompute settlements from JSON Lines (one cycle a line) without touching the database."
    # A pure computation: no system checks, which would read the project's files and settings.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("file", help="a JSON Lines file, or - for standard input")

    def handle(self, *args, file, **options):
        try:
            stream = sys.stdin if file == "-" else open(file, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{file}: {exc.strerror}", returncode=2) from None
        cycles = []
        with stream:
            try:
                for number, line in enumerate(stream, start=1):
                    if line.strip():
                        try:
                            cycles.append(parse_cycle(line))
                        except InputError as exc:
                            raise CommandError(f"line {number}: {exc}", returncode=2) from None
            except UnicodeDecodeError:
                raise CommandError(
                    f"line {len(cycles) + 1}: not UTF-8 text", returncode=2
                ) from None
        for cycle in cycles:
            self.stdout.write(json.dumps(settle_line(cycle)))
