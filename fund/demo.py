"""A believable exchange history for the demo, booked through the real services.

The market is simulated (hourly price paths with calm weeks and two crashes); everything that
touches money goes through the same services the trading engine and the operators use: takeovers
through `liquidations_record`, position profits through `position_profits_record`, deposits and
withdrawals through the ledger services, and every past cycle through `cycles_close_due` and
`settlement_cycle_settle`. The random draws depend on the seed only, so one seed and one end
date always give the same history.
"""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction

from fund.demo_wallet import apply_history
from fund.models import Contract, Event, FanOutCursor, Fund, SettlementCycle
from fund.services.cycles import cycles_close_due
from fund.services.ledger import fund_deposit, fund_withdraw
from fund.services.liquidations import (
    PositionProfitInput,
    TakeoverInput,
    liquidations_record,
    position_profits_record,
)
from fund.services.outbox import fan_out_paused
from fund.services.prices import IndexPriceInput, index_prices_record
from fund.services.settlement import settlement_cycle_settle
from statements.models import Asset, Profile, TraderAccount

DAYS = 90
TRADERS = 300
TRADER_PASSWORD = "demo-trader-2026"
ADMIN_USERNAME, ADMIN_PASSWORD = "admin", "demo-admin-2026"

ASSETS = [
    ("USDT", "Tether USD", 8),
    ("USDC", "USD Coin", 8),
    ("BTC", "Bitcoin", 8),
    ("ETH", "Ether", 8),
]
# symbol, margin asset, kind, multiplier, underlying, takeovers per calm hour, typical contracts
CONTRACTS = [
    ("BTCUSDT", "USDT", Contract.Kind.LINEAR, "0.001", "BTC", 0.9, 900),
    ("ETHUSDT", "USDT", Contract.Kind.LINEAR, "0.01", "ETH", 0.7, 1500),
    ("SOLUSDT", "USDT", Contract.Kind.LINEAR, "1", "SOL", 0.5, 180),
    ("BTCUSDC", "USDC", Contract.Kind.LINEAR, "0.001", "BTC", 0.35, 500),
    ("ETHUSDC", "USDC", Contract.Kind.LINEAR, "0.01", "ETH", 0.25, 900),
    ("BTCUSD", "BTC", Contract.Kind.INVERSE, "100", "BTC", 0.5, 250),
    ("ETHUSD", "ETH", Contract.Kind.INVERSE, "10", "ETH", 0.35, 400),
]
START_PRICE = {"BTC": 68_000.0, "ETH": 3_400.0, "SOL": 150.0}
# Profitable positions reported per fund and day, and the size of a typical profit.
POSITIONS = {"USDT": (260, 900.0), "USDC": (90, 600.0), "BTC": (70, 0.012), "ETH": (60, 0.25)}
OPENING_DEPOSIT = {"USDT": "2500000", "USDC": "400000", "BTC": "42.5", "ETH": "610"}
# (day, hour, total fall) of the two crashes; the market is calm in between.
CRASHES = [(31, 14, 0.24), (67, 3, 0.16)]


@dataclass
class DemoSummary:
    funds: int
    traders: int
    takeovers: int
    position_profits: int
    cycles_settled: int


def _users(rng: random.Random) -> list[TraderAccount]:
    """Trader logins and their accounts (not money: created directly, one password hash)."""
    User = get_user_model()
    password = make_password(TRADER_PASSWORD)
    users = User.objects.bulk_create(
        [
            User(
                username=f"trader{i:03d}",
                password=password,
                first_name=f"Trader {i:03d}",
                email=f"trader{i:03d}@example.com",
            )
            for i in range(1, TRADERS + 1)
        ]
    )
    users = list(User.objects.filter(username__startswith="trader").order_by("username"))
    TraderAccount.objects.bulk_create(
        [
            TraderAccount(external_id=f"ACC-{100000 + i * 37:06d}", user=u)
            for i, u in enumerate(users, start=1)
        ]
    )
    if not User.objects.filter(username=ADMIN_USERNAME).exists():
        User.objects.create_superuser(ADMIN_USERNAME, "ops@example.com", ADMIN_PASSWORD)
    return list(TraderAccount.objects.order_by("external_id"))


def _price_paths(rng: random.Random, hours: int) -> dict[str, list[float]]:
    """Hourly prices: a calm random walk, with the crashes spread over a few hours."""
    shocks = {}
    for day, hour, fall in CRASHES:
        start = day * 24 + hour
        for k, weight in enumerate((0.45, 0.3, 0.15, 0.1)):
            shocks[start + k] = math.log(1 - fall) * weight
        for k in range(4, 30):  # a volatile aftermath with a partial rebound
            shocks[start + k] = abs(math.log(1 - fall)) * 0.012
    beta = {"BTC": 1.0, "ETH": 1.25, "SOL": 1.6}
    market = [rng.gauss(0, 0.0045) + shocks.get(h, 0.0) for h in range(hours)]
    paths = {}
    for coin, start in START_PRICE.items():
        price, path = start, []
        for h in range(hours):
            volatile = 1.0 + 3.0 * (h in shocks)
            price *= math.exp(beta[coin] * market[h] + rng.gauss(0, 0.002 * volatile))
            path.append(price)
        paths[coin] = path
    return paths


def _text(value: float, places: int) -> str:
    """A simulated price or quantity as the engine would send it: decimal text."""
    return str(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN))


class _Market:
    def __init__(self, rng: random.Random, start: datetime, hours: int):
        self.rng = rng
        self.start = start
        self.paths = _price_paths(rng, hours + 1)
        self.contracts = {c.symbol: c for c in Contract.objects.select_related("margin_asset")}
        self.ids = iter(range(1, 10**9))

    def takeovers(self, hour: int, now: datetime) -> list[TakeoverInput]:
        """The takeovers that closed during one hour, driven by that hour's price move."""
        rng, items = self.rng, []
        for symbol, _, kind, multiplier, coin, rate, size in CONTRACTS:
            path = self.paths[coin]
            move = math.log(path[hour + 1] / path[hour])
            stress = min(abs(move) / 0.006, 25.0)
            count = _poisson(rng, rate * (1 + stress**2))
            for _ in range(count):
                # In a falling hour mostly longs are liquidated, in a rising one shorts.
                side = (
                    "long" if rng.random() < (0.5 - max(-0.45, min(0.45, move * 40))) else "short"
                )
                against = -1 if side == "long" else 1
                minute = rng.uniform(7.0, 58.0)  # after the previous cycle's settlement
                taken = self.start + timedelta(hours=hour, minutes=minute)
                closed = taken + timedelta(seconds=rng.uniform(2, 50))
                if closed > now:
                    continue
                price = path[hour] * math.exp(move * minute / 60)
                quantity = max(1, round(rng.lognormvariate(math.log(size), 0.9)))
                notional_usd = (
                    quantity * float(multiplier) * (price if kind == Contract.Kind.LINEAR else 1)
                )
                margin_rate = rng.uniform(0.0015, 0.006)
                slippage = rng.gauss(0.0009, 0.0012) + stress * rng.uniform(0.0, 0.0009)
                close_price = price * (1 + against * slippage)
                if kind == Contract.Kind.LINEAR:
                    margin = notional_usd * margin_rate
                else:
                    margin = notional_usd * margin_rate / price
                items.append(
                    TakeoverInput(
                        external_id=f"LQ-{symbol}-{next(self.ids):08d}",
                        contract=symbol,
                        side=side,
                        quantity=str(quantity),
                        takeover_price=_text(price, 2),
                        close_price=_text(close_price, 2),
                        remaining_margin=_text(margin, 8),
                        taken_over_at=taken,
                        closed_at=closed,
                    )
                )
        return sorted(items, key=lambda item: item.closed_at)  # the ledger in time order


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _position_profits(
    rng, accounts, position_ids, asset_code, day, stressed
) -> dict[str, list[PositionProfitInput]]:
    """One day's reported position profits of a fund: a long tail of small winners, a few big
    ones, and some losing positions (which take no part in a settlement)."""
    count, typical = POSITIONS[asset_code]
    count = int(count * (1.6 if stressed else 1.0) * rng.uniform(0.8, 1.2))
    symbols = [c[0] for c in CONTRACTS if c[1] == asset_code]
    places = 2 if asset_code in ("USDT", "USDC") else 8
    items = []
    # Heavy traders: the first accounts trade more and bigger, so that they show up often.
    weights = [1 / (1 + i) ** 0.6 for i in range(len(accounts))]
    for account in rng.choices(accounts, weights=weights, k=count):
        profit = typical * rng.paretovariate(1.3) * (2.5 if stressed else 1.0)
        if rng.random() < 0.15:
            profit = -profit * 0.6
        items.append(
            PositionProfitInput(
                position_id=next(position_ids),
                account=account.external_id,
                contract=rng.choice(symbols),
                profit=_text(profit, places),
            )
        )
    return items


def load_demo(
    *,
    seed: int = 2026,
    end: datetime,
    days: int = DAYS,
    progress: Callable[[int], object] | None = None,
) -> DemoSummary:
    """Builds `days` days of history ending at `end` (the current cycle stays open). The history
    is not fanned out (no webhook, no email for the past); the exchange's wallet is taken to have
    applied each settled cycle a few minutes after it settled."""
    with fan_out_paused():
        summary = _load(seed=seed, end=end, days=days, progress=progress)
        apply_history(now_of=lambda cycle: min(cycle.settled_at + timedelta(minutes=3), end))
    last = Event.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    FanOutCursor.objects.update_or_create(name="emails", defaults={"last": last})
    # The demo trader has read their notifications up to three days ago: the last days' are new.
    Profile.objects.bulk_create(
        Profile(user=user, notices_read_at=end - timedelta(days=3))
        for user in get_user_model().objects.filter(username__startswith="trader")
    )
    return summary


def _load(*, seed: int, end: datetime, days: int, progress) -> DemoSummary:
    rng = random.Random(seed)
    today = datetime.combine(end.date(), time(0), tzinfo=end.tzinfo)
    start = today - timedelta(days=days)
    hours_so_far = int((end - today).total_seconds() // 3600)
    market_hours = days * 24 + hours_so_far + 1

    with transaction.atomic():
        for code, name, precision in ASSETS:
            asset = Asset.objects.create(code=code, name=name, precision=precision)
            Fund.objects.create(asset=asset, anchor=start, cycle_seconds=86400, grace_seconds=300)
        for symbol, margin, kind, multiplier, *_ in CONTRACTS:
            Contract.objects.create(
                symbol=symbol,
                margin_asset=Asset.objects.get(code=margin),
                kind=kind,
                multiplier=Decimal(multiplier),
            )
        accounts = _users(rng)

    for code, amount in OPENING_DEPOSIT.items():
        fund_deposit(
            asset_code=code,
            amount=amount,
            reason="Opening balance of the insurance fund",
            now=start + timedelta(minutes=1),
        )

    market = _Market(rng, start, market_hours)
    stable_rng = random.Random(seed + 1)
    position_ids = iter(range(7_000_001, 10**12))
    takeovers = positions = settled = 0
    late: list[TakeoverInput] = []
    crash_days = {day for day, _, _ in CRASHES} | {day + 1 for day, _, _ in CRASHES}

    for day in range(days + 1):
        day_start = start + timedelta(days=day)
        last_hour = 24 if day < days else hours_so_far
        for hour in range(last_hour):
            at = day_start + timedelta(hours=hour + 1)
            now = min(at, end)
            items = market.takeovers(day * 24 + hour, now)
            if late and hour == 0:
                items, late = late + items, []
            if hour == 23 and items and rng.random() < 0.2:
                # Reported only after the cycle settled: booked into the next cycle, marked late.
                late.append(items.pop())
            if items:
                takeovers += liquidations_record(items=items, now=now).created_count
            # The exchange's own moves, on the hour, between two hours of takeovers.
            if (day, hour) == (33, 9):
                fund_deposit(
                    asset_code="USDT",
                    amount="750000",
                    now=at,
                    reason="Top-up from the exchange's treasury after the market crash of "
                    f"{start + timedelta(days=CRASHES[0][0]):%-d %B}",
                )
            if (day, hour) == (58, 10):
                fund_withdraw(
                    asset_code="BTC",
                    amount="4.5",
                    now=at,
                    reason="Reserve above the fund's target returned to the exchange's treasury",
                )

        # The engine's hourly index prices in USD: the coins' simulated paths, the stablecoins
        # a hair around one dollar (from their own random draws, so the history is unchanged).
        prices = [
            IndexPriceInput(code, _text(value, 2 if code in START_PRICE else 6), at)
            for hour in range(last_hour)
            for at in [day_start + timedelta(hours=hour + 1)]
            for code, value in _index_prices(market, stable_rng, day * 24 + hour).items()
        ]
        if prices:
            index_prices_record(items=prices, now=min(day_start + timedelta(days=1), end))

        # The engine reports the day's position profits at its end (today's: so far).
        report_at = min(day_start + timedelta(hours=23, minutes=59), end)
        cycles = {c.fund.asset.code: c for c in _open_cycles(day_start)}
        for code in POSITIONS:
            items = _position_profits(rng, accounts, position_ids, code, day, day in crash_days)
            positions += position_profits_record(
                cycle_id=cycles[code].id, items=items, now=report_at
            ).created_count
        if day == days:
            break

        settle_at = day_start + timedelta(days=1, minutes=6)
        if settle_at <= end:  # otherwise still in its grace period: the scheduler settles it
            due = cycles_close_due(now=settle_at)
            for cycle_id in due.to_settle:
                if settlement_cycle_settle(cycle_id=cycle_id, now=settle_at).posted:
                    settled += 1
        if progress:
            progress(1)

    cycles_close_due(now=end)
    return DemoSummary(
        funds=len(ASSETS),
        traders=len(accounts),
        takeovers=takeovers,
        position_profits=positions,
        cycles_settled=settled,
    )


def _index_prices(market: "_Market", rng: random.Random, hour: int) -> dict[str, float]:
    """The USD index price of each demo asset at the end of the hour."""
    return {
        "BTC": market.paths["BTC"][hour],
        "ETH": market.paths["ETH"][hour],
        "USDT": 1 + rng.gauss(0, 0.00015),
        "USDC": 1 + rng.gauss(0, 0.0001),
    }


def _open_cycles(day_start: datetime):
    """Each fund's cycle for the day (opened by the services if no takeover opened it yet)."""
    cycles_close_due(now=day_start)
    return SettlementCycle.objects.select_related("fund__asset").filter(starts_at=day_start)
