"""Apportionment → position profit through one composite foreign key on PostgreSQL.

(position_id, cycle_id) must be an existing position profit's (id, cycle_id): the apportioned
position exists and belongs to the apportionment's cycle. One check per row instead of two on the
settlement's hot path. SQLite (demo and tests) cannot add a constraint to an existing table.
"""

import django.db.models.deletion
from django.db import migrations, models

COMPOSITE_KEY = """
    ALTER TABLE fund_apportionment ADD CONSTRAINT apportionment_position_of_cycle
    FOREIGN KEY (position_id, cycle_id) REFERENCES fund_positionprofit (id, cycle_id)
    ON DELETE RESTRICT DEFERRABLE INITIALLY DEFERRED
"""


def add_composite_key(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(COMPOSITE_KEY)


def drop_composite_key(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE fund_apportionment DROP CONSTRAINT apportionment_position_of_cycle"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("fund", "0002_drop_redundant_indexes"),
        ("statements", "0002_drop_redundant_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="apportionment",
            name="cycle",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="apportionments",
                to="fund.settlementcycle",
            ),
        ),
        migrations.AlterField(
            model_name="apportionment",
            name="position",
            field=models.OneToOneField(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="apportionment",
                to="fund.positionprofit",
            ),
        ),
        migrations.AddConstraint(
            model_name="positionprofit",
            constraint=models.UniqueConstraint(
                fields=("id", "cycle"), name="position_profit_id_cycle"
            ),
        ),
        migrations.RunPython(add_composite_key, drop_composite_key),
    ]
