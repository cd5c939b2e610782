import logging
import threading
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection

from fund.demo_wallet import wallet_setup
from fund.tasks import close_due_cycles, fan_out_events, sign_log_checkpoints

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
        self.wallet(addrport)
        threading.Thread(target=self.beat, name="in-process-beat", daemon=True).start()
        call_command("runserver", addrport, use_reloader=False)

    def wallet(self, addrport: str) -> None:
        """The simulated exchange wallet (fund/demo_wallet.py) hears of each settled cycle by
        webhook, pulls its apportionments and acknowledges them."""
        if not settings.WEBHOOK_ALLOW_PRIVATE:
            self.stdout.write(
                "WEBHOOK_ALLOW_PRIVATE is off: the demo wallet (a webhook to this very server) "
                "does not run. `make demo` turns it on."
            )
            return
        admin = get_user_model().objects.filter(is_superuser=True).order_by("id").first()
        if admin is None:
            self.stdout.write("No admin: load the demo first; the demo wallet does not run.")
            return
        host = addrport if ":" in addrport else f"127.0.0.1:{addrport}"
        wallet_setup(base_url=f"http://{host}", admin=admin)
        self.stdout.write(
            "The demo exchange wallet listens for settled cycles at "
            f"http://{host}/demo/wallet/webhook and acknowledges each one it applies."
        )

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
                fan_out_events.delay()  # retries that fell due, and whatever a kick missed
            except Exception:  # keep the scheduler alive; the next minute tries again
                logger.exception("the in-process beat failed")
            finally:
                connection.close()
