from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from fund.services.settlement import settlement_cycle_settle
from statements.money import format_units


class Command(BaseCommand):
    help = "Settle one cycle now, in this process (a no-op when it is settled already)."

    def add_arguments(self, parser):
        parser.add_argument("cycle_id", type=int)
        parser.add_argument(
            "--ignore-grace",
            action="store_true",
            help="settle a closed cycle before its grace period is over",
        )

    def handle(self, *args, cycle_id, ignore_grace, **options):
        try:
            outcome = settlement_cycle_settle(cycle_id=cycle_id, ignore_grace=ignore_grace)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages), returncode=2) from None
        cycle = outcome.cycle
        if not outcome.posted:
            self.stdout.write(
                f"cycle {cycle.id} was settled already "
                f"({cycle.settled_at:%Y-%m-%d %H:%M:%S} UTC); nothing posted"
            )
            return
        p = cycle.fund.asset.precision
        r = outcome.result
        self.stdout.write(
            f"cycle {cycle.id} settled: "
            f"L={format_units(r.loss, p)} F={format_units(r.fund_share, p)} "
            f"U={format_units(r.users_share, p)} participants={len(r.participants)} "
            f"backstop={format_units(r.backstop, p)} uncovered={format_units(r.uncovered, p)}"
        )
