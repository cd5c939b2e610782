"""The outbox (fund/services/outbox.py): events numbered without gaps from one counter row
(made here), append-only on PostgreSQL; and the exchange's acknowledgements of settled cycles."""

import django.db.models.deletion
from django.db import migrations, models


def counter_row(apps, schema_editor):
    apps.get_model("fund", "EventCounter").objects.create(pk=1, last=0)


TRIGGERS = [
    "CREATE TRIGGER fund_event_append_only BEFORE UPDATE OR DELETE ON fund_event "
    "FOR EACH ROW EXECUTE FUNCTION books_refuse_change()",
    "CREATE TRIGGER fund_event_no_truncate BEFORE TRUNCATE ON fund_event "
    "FOR EACH STATEMENT EXECUTE FUNCTION books_refuse_change()",
    "CREATE TRIGGER fund_cycleapplication_kept BEFORE UPDATE OR DELETE ON fund_cycleapplication "
    "FOR EACH ROW EXECUTE FUNCTION books_refuse_change()",
]


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in TRIGGERS:
            schema_editor.execute(statement, params=None)


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in TRIGGERS:
            name, table = statement.split()[2], statement.split(" ON ")[1].split()[0]
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("fund", "0015_cycle_balance_seq"),
        ("statements", "0004_login_budget"),
    ]

    operations = [
        migrations.CreateModel(
            name="EventCounter",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("last", models.PositiveBigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name="CycleApplication",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("count", models.PositiveBigIntegerField()),
                ("total_units", models.BigIntegerField()),
                ("root", models.CharField(blank=True, max_length=64)),
                ("applied_at", models.DateTimeField()),
                (
                    "cycle",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="application",
                        to="fund.settlementcycle",
                    ),
                ),
                (
                    "token",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="statements.apitoken",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="Event",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("seq", models.PositiveBigIntegerField(unique=True)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("fund.records_appended", "Records appended to a fund's ledger"),
                            ("fund.record_corrected", "A record corrected"),
                            ("cycle.closed", "A cycle closed"),
                            ("cycle.settled", "A cycle settled"),
                            ("cycle.failed", "A cycle's settlement failed"),
                            ("cycle.applied", "A cycle's apportionments applied by the exchange"),
                        ],
                        max_length=32,
                    ),
                ),
                ("data", models.JSONField(default=dict)),
                ("public", models.BooleanField(default=True)),
                ("created_at", models.DateTimeField()),
                (
                    "cycle",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="fund.settlementcycle",
                    ),
                ),
                (
                    "fund",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="fund.fund",
                    ),
                ),
            ],
            options={
                "ordering": ["seq"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("seq__gte", 1)), name="event_seq_positive"
                    )
                ],
            },
        ),
        migrations.RunPython(counter_row, migrations.RunPython.noop),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
