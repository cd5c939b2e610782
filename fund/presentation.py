"""Figures as people read them: a settlement preview as decimal text, and how one
apportionment was computed in the trader's own numbers (docs/rules.md §2)."""

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from django.utils import timezone

from fund.cached import cached
from fund.models import Apportionment, SettlementCycle
from fund.services.settlement.posting import ranked_positions, settlement_compute
from statements.money import (
    format_grouped,
    format_units,
    format_usd,
    fraction_text,
    grouped_text,
    significant_text,
    usd_value,
)

# Significant digits shown of a ratio that has no short exact decimal (the exact fraction is
# shown beside it): twelve tell any two participants' shares apart.
RATIO_DIGITS = 12


@dataclass(frozen=True)
class ApportionmentComputation:
    """How one apportionment was computed, in the trader's own numbers (docs/rules.md §2)."""

    cycle: SettlementCycle
    loss_units: int
    fund_share_units: int
    users_share_units: int
    position_id: int
    contract: str
    profit_units: int
    rank: int
    participant_count: int
    threshold_profit_units: int
    participants_profit_units: int
    fraction: Fraction  # U / S, capped at 1
    exact_share: Fraction  # U × p / S, before rounding
    amount_units: int
    rounding_unit: bool
    profit_after_units: int
    precision: int

    @property
    def ratio(self) -> dict:
        """U / S as people read it: decimal (exact when short, else twelve significant digits),
        a percentage the same way, and whether those digits are the whole value."""
        return _ratio(self.fraction)

    @property
    def share(self) -> dict:
        """The share before rounding in the asset's units: exact, or cut six digits past the
        smallest unit (enough to see which way rounding went)."""
        share = self.exact_share / 10**self.precision
        text, exact = fraction_text(share, places=self.precision + 6)
        return {"text": grouped_text(text), "exact": exact}

    @property
    def floor_units(self) -> int:
        return int(self.exact_share)

    @property
    def remainder(self) -> dict:
        """What rounding down left over, in smallest units (a fraction of one unit)."""
        left = self.exact_share - self.floor_units
        text, exact = fraction_text(left, places=6)
        return {"text": text, "exact": exact}


def _ratio(value: Fraction) -> dict:
    decimal, exact = significant_text(value, RATIO_DIGITS)
    percent, _ = significant_text(value * 100, RATIO_DIGITS)
    return {"decimal": decimal, "percent": percent, "exact": exact}


def apportionment_computation(*, apportionment: Apportionment) -> ApportionmentComputation:
    cycle, position = apportionment.cycle, apportionment.position
    users, participants = cycle.users_share_units, cycle.participants_profit_units
    fraction = min(Fraction(users, participants), Fraction(1)) if participants else Fraction(0)
    return ApportionmentComputation(
        cycle=cycle,
        loss_units=cycle.loss_units,
        fund_share_units=cycle.fund_share_units,
        users_share_units=users,
        position_id=position.position_id,
        contract=position.contract.symbol,
        profit_units=position.profit_units,
        rank=apportionment.rank,
        participant_count=cycle.participant_count,
        threshold_profit_units=cycle.threshold_profit_units,
        participants_profit_units=participants,
        fraction=fraction,
        exact_share=fraction * position.profit_units,
        amount_units=apportionment.amount_units,
        rounding_unit=apportionment.rounding_unit,
        profit_after_units=position.profit_units - apportionment.amount_units,
        precision=cycle.fund.asset.precision,
    )


def settlement_preview_data(
    *, cycle: SettlementCycle, result, largest: int = 20, grouped: bool = False
) -> dict:
    """A settlement preview's figures as decimal text, with the largest apportionments by rank:
    plain for the API, thousands grouped for people (`grouped`, the console)."""
    p = cycle.fund.asset.precision

    def fmt(units: int) -> str:
        return format_grouped(units, p) if grouped else format_units(units, p)

    return {
        "cycle": cycle.id,
        "asset": cycle.fund.asset.code,
        "loss": fmt(result.loss),
        "balance": fmt(result.balance),
        "fund_share": fmt(result.fund_share),
        "users_share": fmt(result.users_share),
        "total_profit": fmt(result.total_profit),
        "participants_profit": fmt(result.participants_profit),
        "threshold_profit": fmt(result.threshold_profit),
        "profitable_count": result.profitable_count,
        "participant_count": len(result.participants),
        "backstop": fmt(result.backstop),
        "uncovered": fmt(result.uncovered),
        "largest": [
            {"rank": i + 1, "position_id": pid, "amount": fmt(a)}
            for i, (pid, a) in enumerate(
                zip(result.participants[:largest], result.amounts[:largest])
            )
        ],
    }


RUNNING_ROWS = 20  # an open cycle's largest would-be apportionments shown
RUNNING_SECONDS = 30  # how long an open cycle's running figures are kept before recomputing


def cycle_running_figures(*, cycle: SettlementCycle) -> dict:
    """What settling an open cycle now would share, for its public page: losses so far, the
    profitable positions so far, the share of profit each participant would bear and the
    largest would-be apportionments by rank (no identities). The same engine as the settlement
    computes it, writing nothing; it is kept RUNNING_SECONDS in the cache, so that a crowd
    reading the page computes it once."""

    def compute() -> dict:
        ranked = ranked_positions(cycle)
        result = settlement_compute(cycle, cycle.fund.balance_units, ranked)
        rate = (
            min(Fraction(result.users_share, result.participants_profit), Fraction(1))
            if result.participants_profit
            else Fraction(0)
        )
        rows = [
            {"rank": i + 1, "profit": row[1], "amount": amount}
            for i, (row, amount) in enumerate(zip(ranked[:RUNNING_ROWS], result.amounts))
        ]
        return {
            "loss": result.loss,
            "balance": result.balance,
            "fund_share": result.fund_share,
            "users_share": result.users_share,
            "profitable_count": result.profitable_count,
            "total_profit": result.total_profit,
            "participant_count": len(result.participants),
            "participants_profit": result.participants_profit,
            "threshold_profit": result.threshold_profit,
            "backstop": result.backstop,
            "uncovered": result.uncovered,
            "rate": _ratio(rate),
            "rows": rows,
            "computed_at": timezone.now(),
        }

    return cached(f"cycle-running:{cycle.pk}", compute, timeout=RUNNING_SECONDS)


def share_of_profit(amount: int, profit: int) -> str:
    """An apportionment as a percentage of its position's profit (six significant digits)."""
    return significant_text(Fraction(amount * 100, profit), 6)[0] if profit else "0"


def usd_values(rows: list[dict], prices: dict) -> dict:
    """Each overview row's value in US dollars at its asset's latest index price (exact, shown
    to the cent), and the total of those that have a price. Adds row["usd"] (None without a
    price) and row["price"]; returns {"total", "priced", "unpriced"}."""
    total, unpriced = Decimal(0), []
    for row in rows:
        fund = row["fund"]
        price = prices.get(fund.asset_id)
        row["price"] = price
        if price is None:
            row["usd"] = None
            unpriced.append(fund.asset.code)
            continue
        value = usd_value(fund.balance_units, fund.asset.precision, price.price)
        row["usd"] = value
        total += value
    for row in rows:
        row["usd_text"] = None if row["usd"] is None else format_usd(row["usd"])
    return {"total": format_usd(total), "unpriced": unpriced, "priced": len(rows) - len(unpriced)}
