"""Takeover → cycle through one composite foreign key on PostgreSQL: (cycle_id, fund_id) must
be an existing cycle's (id, fund_id), so a takeover's cycle is always its own fund's."""

import django.db.models.deletion
from django.db import migrations, models

COMPOSITE_KEY = """
    ALTER TABLE fund_liquidationtakeover ADD CONSTRAINT takeover_cycle_of_fund
    FOREIGN KEY (cycle_id, fund_id) REFERENCES fund_settlementcycle (id, fund_id)
    ON DELETE RESTRICT DEFERRABLE INITIALLY DEFERRED
"""


def add_composite_key(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(COMPOSITE_KEY)


def drop_composite_key(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE fund_liquidationtakeover DROP CONSTRAINT takeover_cycle_of_fund"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("fund", "0005_api"),
    ]

    operations = [
        migrations.AlterField(
            model_name="liquidationtakeover",
            name="cycle",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="takeovers",
                to="fund.settlementcycle",
            ),
        ),
        migrations.AlterField(
            model_name="liquidationtakeover",
            name="fund",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="takeovers",
                to="fund.fund",
            ),
        ),
        migrations.AddConstraint(
            model_name="settlementcycle",
            constraint=models.UniqueConstraint(fields=("id", "fund"), name="cycle_id_fund"),
        ),
        migrations.RunPython(add_composite_key, drop_composite_key),
    ]
