from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from fund.models import Fund
from fund.services.verify import cycles_verify, ledger_verify, takeovers_verify


class Command(BaseCommand):
    help = (
        "Recompute every fund's hash chain, balance, running totals and transparency log (its "
        "tiles and signed checkpoints); every settled cycle "
        "from its stored takeovers and position profits (every figure, apportionment, statement, "
        "coverage record and Merkle root); every takeover's engine result and profit record. "
        "Name each mismatch. Exit 1 when anything is broken."
    )

    def add_arguments(self, parser):
        parser.add_argument("assets", nargs="*", help="asset codes (default: every fund)")

    def handle(self, *args, assets, **options):
        funds = Fund.objects.select_related("asset").order_by("asset__code")
        if assets:
            funds = funds.filter(asset__code__in=[a.upper() for a in assets])
            if funds.count() != len(set(assets)):
                raise CommandError("Unknown asset among: " + ", ".join(assets), returncode=2)
        quiet = options["verbosity"] == 0
        broken = 0

        def bar(total, desc, unit):
            return tqdm(total=total, desc=desc, unit=unit, disable=quiet)

        for fund in funds:
            code = fund.asset.code
            with bar(fund.records.count(), code, "rec") as progress:
                report = ledger_verify(fund=fund, progress=progress.update)
            if report.ok:
                self.stdout.write(
                    f"{code}: {report.records} records, chain intact, head {report.head}; "
                    "balance and running totals match; the log's tiles and signed checkpoints "
                    "are the tree of these records"
                )
            elif report.first_bad_seq is not None:
                broken += 1
                self.stdout.write(
                    f"{code}: BROKEN at record #{report.first_bad_seq}: {report.problem}"
                )
            for problem in report.aggregate_problems:
                broken += 1
                self.stdout.write(f"{code}: BROKEN: {problem}")

            settled = fund.cycles.filter(status="settled").count()
            with bar(settled, f"{code} cycles", "cycle") as progress:
                cycles = cycles_verify(fund=fund, progress=progress.update)
            if cycles.ok:
                self.stdout.write(
                    f"{code}: {cycles.cycles} settled cycles, totals and Merkle roots match "
                    "(recomputed from their takeovers and position profits: every figure, "
                    "apportionment and statement)"
                )
            for problem in cycles.problems:
                broken += 1
                self.stdout.write(f"{code}: BROKEN: {problem}")

            with bar(fund.takeovers.count(), f"{code} takeovers", "tk") as progress:
                takeovers = takeovers_verify(fund=fund, progress=progress.update)
            if takeovers.ok:
                self.stdout.write(
                    f"{code}: {takeovers.takeovers} takeovers recomputed: engine results and "
                    "profit records match"
                )
            for problem in takeovers.problems:
                broken += 1
                self.stdout.write(f"{code}: BROKEN: {problem}")
        if broken:
            raise CommandError(f"{broken} check(s) failed verification.", returncode=1)
