"""The settlement of one cycle (docs/rules.md §2) as a pure function over integers.

All amounts are integers of the asset's smallest unit, so every step is exact; ratios are exact
Decimals. The same function settles cycles, previews them and backs `manage.py settlement_calc`.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction


@dataclass(frozen=True, slots=True)
class SettlementResult:
    loss: int  # L
    balance: int  # B, before settlement
    fund_share: int  # F
    users_share: int  # U
    total_profit: int  # P, all profitable positions
    participants_profit: int  # S
    threshold_profit: int  # the profit of the last participant (0 when there is none)
    profitable_count: int
    participants: list[int]  # position ids in rank order (rank 1 first)
    amounts: list[int]  # a_i, aligned with participants
    rounding_units: list[bool]  # whether a_i received one leftover smallest unit
    backstop: int
    uncovered: int

    @property
    def apportioned(self) -> int:
        return self.users_share - self.backstop - self.uncovered

    @property
    def fund_total(self) -> int:
        """What the fund pays: its share plus the backstop."""
        return self.fund_share + self.backstop


def _ratio(value) -> Fraction:
    ratio = value if isinstance(value, Fraction) else Fraction(Decimal(value))
    if not 0 <= ratio <= 1:
        raise ValueError("a ratio must lie between 0 and 1")
    return ratio


def fund_share_of(*, loss: int, balance: int, fund_ratio) -> int:
    """F = L × fund ratio, rounded down, never more than the balance B (docs/rules.md §2 step
    1)."""
    ratio = _ratio(fund_ratio)
    return min(loss * ratio.numerator // ratio.denominator, balance)


def backstop_of(*, rest: int, balance: int, fund_share: int) -> int:
    """What the fund takes of the part the participants cannot bear (`rest` = U − Σ a_i): all
    of it, up to what the balance holds after its own share (docs/rules.md §2 step 6)."""
    return min(rest, balance - fund_share)


def settlement_at_balance(result: SettlementResult, *, balance: int, fund_ratio):
    """The same settlement for another balance B′, or None when it differs.

    The balance enters a settlement only through F = min(L × ratio, B) and the backstop; the
    apportionments follow from U = L − F. When B′ gives the same F and backstop, the result is
    the one computed for B′ (with B′ as its balance); otherwise None: compute it again.
    """
    if balance == result.balance:
        return result
    fund_share = fund_share_of(loss=result.loss, balance=balance, fund_ratio=fund_ratio)
    backstop = backstop_of(
        rest=result.users_share - result.apportioned, balance=balance, fund_share=fund_share
    )
    if (fund_share, backstop) != (result.fund_share, result.backstop):
        return None
    return replace(result, balance=balance)


def compute_settlement(
    *,
    loss: int,
    balance: int,
    fund_ratio,
    screening_ratio,
    positions: Iterable[tuple[int, int]],
) -> SettlementResult:
    """Shares a cycle's loss between the fund and the most profitable positions.

    `positions` are (position id, profit) pairs; profits <= 0 take no part. Input already sorted
    by profit descending, then id ascending (as the database hands it over) sorts in linear time.
    """
    if loss < 0 or balance < 0:
        raise ValueError("loss and balance must not be negative")
    fund_ratio, screening_ratio = _ratio(fund_ratio), _ratio(screening_ratio)

    # Step 1-2: the fund's share, rounded down, never more than the balance; the users' share.
    fund_share = fund_share_of(loss=loss, balance=balance, fund_ratio=fund_ratio)
    users_share = loss - fund_share

    # (−profit, id) sorts in rank order by plain tuple comparison; input that arrives ranked
    # (as the database hands it over) sorts in linear time.
    ranking = [(-profit, position_id) for position_id, profit in positions if profit > 0]
    ranking.sort()
    profitable = [(-negative, position_id) for negative, position_id in ranking]
    total_profit = sum(profit for profit, _ in profitable)

    participants: list[int] = []
    amounts: list[int] = []
    rounding: list[bool] = []
    threshold_profit = 0
    participants_profit = 0

    if users_share > 0 and profitable:
        # Step 3: the shortest prefix whose running profit reaches screening_ratio × P.
        target_num = screening_ratio.numerator * total_profit
        den = screening_ratio.denominator
        running = 0
        count = 0
        for profit, _ in profitable:
            running += profit
            count += 1
            if running * den >= target_num:
                break
        ranked = profitable[:count]
        participants = [position_id for _, position_id in ranked]
        participants_profit = running
        threshold_profit = ranked[-1][0]

        if users_share >= participants_profit:
            # Step 5: the cap binds for everyone at once; each pays its whole profit.
            amounts = [profit for profit, _ in ranked]
            rounding = [False] * count
        else:
            # Step 4 and 7: pro rata, rounded down, leftover units by largest remainder.
            amounts = []
            remainders = []
            for profit, _ in ranked:
                share, remainder = divmod(users_share * profit, participants_profit)
                amounts.append(share)
                remainders.append(remainder)
            leftover = users_share - sum(amounts)
            rounding = [False] * count
            if leftover:
                # Largest remainders first; a stable sort keeps ties in rank order.
                by_remainder = sorted(range(count), key=remainders.__getitem__, reverse=True)
                for i in by_remainder[:leftover]:
                    amounts[i] += 1
                    rounding[i] = True

    # Step 6: what the participants cannot bear falls to the fund, then to "uncovered".
    apportioned = sum(amounts)
    rest = users_share - apportioned
    backstop = backstop_of(rest=rest, balance=balance, fund_share=fund_share)
    uncovered = rest - backstop

    return SettlementResult(
        loss=loss,
        balance=balance,
        fund_share=fund_share,
        users_share=users_share,
        total_profit=total_profit,
        participants_profit=participants_profit,
        threshold_profit=threshold_profit,
        profitable_count=len(profitable),
        participants=participants,
        amounts=amounts,
        rounding_units=rounding,
        backstop=backstop,
        uncovered=uncovered,
    )
