import logging
import threading
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection

from fund.tasks import close_due_cycles, sign_log_checkpoints

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Serve the portal with the scheduler in this process: on every minute the beat task runs "
        "here (Celery eager), so cycles close and settle, and the funds' logs are signed, while "
        "the demo runs."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args, addrport, **options):
        threading.Thread(target=self.beat, name="in-process-beat", daemon=True).start()
        call_command("runserver", addrport, use_reloader=False)

    @staticmethod
    def beat(
        stop: threading.Event | None = None, interval: float = 60, runs: int | None = None
    ) -> None:
        """Runs the beat task on every full `interval` seconds until `stop` is set
        (or `runs` times)."""
        stop = stop or threading.Event()
        while (runs is None or runs > 0) and not stop.wait(interval - time.time() % interval):
            runs = None if runs is None else runs - 1
            try:
                close_due_cycles.delay()
                sign_log_checkpoints.delay()
            except Exception:  # keep the scheduler alive; the next minute tries again
                logger.exception("the in-process beat failed")
            finally:
                connection.close()
