import logging
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from fund.demo import DAYS, load_demo
from fund.models import Fund


class Command(BaseCommand):
    help = (
        f"Load a deterministic demo history: {DAYS} days of liquidations and settled cycles, "
        "traders with logins."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--seed", type=int, default=2026, help="the same seed and end give the same history"
        )
        parser.add_argument("--end", help="the history's end, ISO 8601 in UTC (default: now)")
        parser.add_argument(
            "--days", type=int, default=DAYS, help=f"days of history (default {DAYS})"
        )
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when funds exist already"
        )

    def handle(self, *args, seed, end, days, if_empty, **options):
        if days < 1:
            raise CommandError("--days must be at least 1.")
        if Fund.objects.exists():
            if if_empty:
                self.stdout.write("The database holds funds already; the demo is not loaded again.")
                return
            raise CommandError(
                "The database holds funds already: load the demo into an empty database."
            )
        if end:
            try:
                end_at = datetime.fromisoformat(end)
            except ValueError:
                raise CommandError(f"--end {end!r} is not an ISO 8601 date and time.") from None
            end_at = end_at if end_at.tzinfo else end_at.replace(tzinfo=UTC)
            if end_at > timezone.now():
                raise CommandError("--end must not be in the future.")
        else:
            end_at = timezone.now()
        logging.getLogger("fund").setLevel(
            logging.WARNING
        )  # one log line per settled cycle is noise here
        with tqdm(
            total=days, desc="Demo history", unit="day", disable=options["verbosity"] == 0
        ) as bar:
            summary = load_demo(
                seed=seed, end=end_at.astimezone(UTC), days=days, progress=bar.update
            )
        self.stdout.write(
            f"Loaded {summary.funds} funds, {summary.traders} traders, "
            f"{summary.takeovers} liquidation takeovers, "
            f"{summary.position_profits} position profits, {summary.cycles_settled} settled cycles."
        )
