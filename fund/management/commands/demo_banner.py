from django.core.management.base import BaseCommand
from django.db.models import Count

from fund.demo import ADMIN_PASSWORD, ADMIN_USERNAME, TRADER_PASSWORD
from statements.models import TraderAccount


class Command(BaseCommand):
    help = "Print where the demo is served and the logins to try."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")

    def handle(self, *args, host, port, **options):
        trader = (
            TraderAccount.objects.filter(user__isnull=False)
            .annotate(n=Count("statements"))
            .order_by("-n", "external_id")
            .select_related("user")
            .first()
        )
        lines = ["", f"  Insurance Fund Portal: http://{host}:{port}/"]
        if trader:
            lines.append(
                f"  Trader login: {trader.user.username} / {TRADER_PASSWORD} "
                f"({trader.n} statements) "
                f"at http://{host}:{port}/accounts/login/"
            )
        lines.append(
            f"  Admin login:  {ADMIN_USERNAME} / {ADMIN_PASSWORD}  "
            f"(console: http://{host}:{port}/ops/, "
            f"Django admin: /admin/, API docs: /api/docs/)"
        )
        lines.append(
            "  Celery tasks run in this process; "
            "every minute the scheduler closes and settles due cycles."
        )
        lines.append(
            "  A simulated exchange wallet hears of each settled cycle by webhook and applies it "
            "(console: /ops/webhooks/); the traders' emails are printed here."
        )
        lines.append("  Stop the server with Ctrl+C.")
        lines.append("")
        self.stdout.write("\n".join(lines))
