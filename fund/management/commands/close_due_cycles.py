from django.core.management.base import BaseCommand, CommandError

from fund.services.cycles import cycles_close_due
from fund.tasks import send_settlements


class Command(BaseCommand):
    help = "Open current cycles, close ended ones and settle those whose grace period is over."

    def add_arguments(self, parser):
        parser.add_argument("--no-settle", action="store_true", help="only open and close cycles")

    def handle(self, *args, no_settle, **options):
        due = cycles_close_due(claim=not no_settle)
        self.stdout.write(
            f"opened {len(due.opened)}, closed {len(due.closed)}, "
            f"due for settlement {len(due.to_settle)}"
        )
        if no_settle:
            return
        sent, unsent = send_settlements(due.to_settle)
        for cycle_id in sent:
            self.stdout.write(f"cycle {cycle_id}: settlement sent")
        if unsent:
            raise CommandError(
                f"The broker could not be reached: settlements of cycles {unsent} not sent "
                "(the next run sends them)."
            )
