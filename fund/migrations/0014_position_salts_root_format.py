"""Cycles anyone can recompute: every position profit gets a salt (16 random bytes, for its
trader only), and a cycle records the form of its Merkle root. Cycles settled before keep their
root of form 1 (the participants' apportionments, with position ids); the others will settle with
form 2 (every profitable position through SHA-256(salt ‖ its id)), so the position profits of
cycles not yet settled get their salts here."""

import os

from django.db import migrations, models

SALT_HELP = (
    "16 random bytes, given to the position's trader only: the cycle's published data commits "
    "to the position through SHA-256(salt ‖ its id) (fund/merkle.py, form 2)."
)
FORMAT_HELP = (
    "1: the root covers the participants' apportionments with their position ids (cycles "
    "settled before the published inputs); 2: every profitable position, each through its "
    "salted commitment (fund/merkle.py)."
)


def salt_unsettled(apps, schema_editor):
    PositionProfit = apps.get_model("fund", "PositionProfit")
    SettlementCycle = apps.get_model("fund", "SettlementCycle")
    SettlementCycle.objects.exclude(status="settled").update(root_format=2)
    if schema_editor.connection.vendor == "postgresql":  # position profits are append-only
        schema_editor.execute("SET LOCAL fund.allow_maintenance = 'on'", params=None)
    rows = PositionProfit.objects.filter(salt__isnull=True).exclude(cycle__status="settled")
    while batch := list(rows.only("id")[:10_000]):
        for row in batch:
            row.salt = os.urandom(16)
        PositionProfit.objects.bulk_update(batch, ["salt"])
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET LOCAL fund.allow_maintenance = 'off'", params=None)


class Migration(migrations.Migration):
    dependencies = [("fund", "0013_log_tiles_checkpoints")]

    operations = [
        migrations.AddField(
            model_name="positionprofit",
            name="salt",
            field=models.BinaryField(blank=True, help_text=SALT_HELP, max_length=16, null=True),
        ),
        migrations.AddField(
            model_name="settlementcycle",
            name="root_format",
            field=models.PositiveSmallIntegerField(default=1, help_text=FORMAT_HELP),
        ),
        migrations.AlterField(
            model_name="settlementcycle",
            name="root_format",
            field=models.PositiveSmallIntegerField(default=2, help_text=FORMAT_HELP),
        ),
        migrations.RunPython(salt_unsettled, migrations.RunPython.noop),
    ]
