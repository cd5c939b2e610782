"""Hourly balance rows and totals by kind for records appended before the ledger kept them."""

from django.db import migrations


def backfill(apps, schema_editor):
    Fund = apps.get_model("fund", "Fund")
    FundRecord = apps.get_model("fund", "FundRecord")
    FundBalanceHour = apps.get_model("fund", "FundBalanceHour")
    FundKindTotal = apps.get_model("fund", "FundKindTotal")
    for fund in Fund.objects.all():
        if (
            FundBalanceHour.objects.filter(fund=fund).exists()
            or FundKindTotal.objects.filter(fund=fund).exists()
        ):
            continue
        hours, kinds, balance = {}, {}, 0
        rows = (
            FundRecord.objects.filter(fund=fund)
            .order_by("seq")
            .values_list("created_at", "kind", "amount_units", "balance_after_units")
        )
        for created_at, kind, amount, after in rows.iterator(chunk_size=5000):
            hour = created_at.replace(minute=0, second=0, microsecond=0)
            row = hours.get(hour)
            if row is None:
                row = hours[hour] = FundBalanceHour(
                    fund=fund,
                    hour=hour,
                    open_units=balance,
                    close_units=balance,
                    low_units=balance,
                    high_units=balance,
                )
            balance = after
            row.close_units = after
            row.low_units, row.high_units = min(row.low_units, after), max(row.high_units, after)
            if amount > 0:
                row.inflow_units += amount
            else:
                row.outflow_units -= amount
            row.records += 1
            total = kinds.setdefault(
                kind, FundKindTotal(fund=fund, kind=kind, total_units=0, records=0)
            )
            total.total_units += amount
            total.records += 1
        FundBalanceHour.objects.bulk_create(hours.values(), batch_size=2000)
        FundKindTotal.objects.bulk_create(kinds.values())


class Migration(migrations.Migration):
    dependencies = [("fund", "0006_takeover_composite_key")]
    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
