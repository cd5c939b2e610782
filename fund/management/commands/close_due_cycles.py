from django.core.management.base import BaseCommand

from fund.services.cycles import cycles_close_due
from fund.tasks import settle_cycle


class Command(BaseCommand):
    help = "Open current cycles, close ended ones and settle those whose grace period is over."

    def add_arguments(self, parser):
        parser.add_argument("--no-settle", action="store_true", help="only open and close cycles")

    def handle(self, *args, no_settle, **options):
        due = cycles_close_due(claim=not no_settle)
        self.stdout.write(f"opened {len(due.opened)}, closed {len(due.closed)}, due for settlement {len(due.to_settle)}")
        if no_settle:
            return
        for cycle_id in due.to_settle:
            settle_cycle.delay(cycle_id)
            self.stdout.write(f"cycle {cycle_id}: settlement sent")
