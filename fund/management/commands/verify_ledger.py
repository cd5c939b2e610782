from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from fund.models import Fund
from fund.services.verify import cycles_verify, ledger_verify


class Command(BaseCommand):
    help = (
        "Recompute every fund's hash chain and every settled cycle's totals and Merkle root; "
        "name the first bad record or cycle. Exit 1 when anything is broken."
    )

    def add_arguments(self, parser):
        parser.add_argument("assets", nargs="*", help="asset codes (default: every fund)")

    def handle(self, *args, assets, **options):
        funds = Fund.objects.select_related("asset").order_by("asset__code")
        if assets:
            funds = funds.filter(asset__code__in=[a.upper() for a in assets])
            if funds.count() != len(set(assets)):
                raise CommandError("Unknown asset among: " + ", ".join(assets), returncode=2)
        broken = 0
        for fund in funds:
            with tqdm(
                total=fund.records.count(),
                desc=fund.asset.code,
                unit="rec",
                disable=options["verbosity"] == 0,
            ) as bar:
                report = ledger_verify(fund=fund, progress=bar.update)
            if report.ok:
                self.stdout.write(
                    f"{report.fund}: {report.records} records, chain intact, head {report.head}"
                )
            else:
                broken += 1
                self.stdout.write(
                    f"{report.fund}: BROKEN at record #{report.first_bad_seq}: {report.problem}"
                )
            settled = fund.cycles.filter(status="settled").count()
            with tqdm(
                total=settled,
                desc=f"{fund.asset.code} cycles",
                unit="cycle",
                disable=options["verbosity"] == 0,
            ) as bar:
                cycles = cycles_verify(fund=fund, progress=bar.update)
            if cycles.ok:
                self.stdout.write(
                    f"{cycles.fund}: {cycles.cycles} settled cycles, totals and Merkle roots match"
                )
            else:
                broken += 1
                self.stdout.write(f"{cycles.fund}: BROKEN: {cycles.problem}")
        if broken:
            raise CommandError(f"{broken} check(s) failed verification.", returncode=1)
