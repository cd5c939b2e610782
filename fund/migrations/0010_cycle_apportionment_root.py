"""Each settled cycle publishes a Merkle root over its apportionments (fund/merkle.py): the field,
its backfill for cycles settled before, and on PostgreSQL a trigger that refuses to change or
delete a settled cycle (its figures and root are published; nothing in the application changes
them), lifted like the books' triggers by `SET fund.allow_maintenance = 'on'`.
"""

import hashlib
from collections.abc import Iterable

from django.db import migrations, models

# Frozen copies of fund.merkle's canonical form as of this migration: a later change to the live
# code must not change what this migration computes.
_LEAF, _NODE = b"\x00", b"\x01"


def _cycle_leaves(
    asset: str, cycle_id: int, rows: Iterable[tuple[int, int, int, int]]
) -> list[bytes]:
    """rows: (rank, position id, profit units, amount units), in rank order."""
    sha, prefix = hashlib.sha256, f"{asset}|{cycle_id}|"
    return [
        sha(_LEAF + f"{prefix}{rank}|{position}|{profit}|{amount}".encode()).digest()
        for rank, position, profit, amount in rows
    ]


def _parents(level: list[bytes]) -> list[bytes]:
    sha = hashlib.sha256
    parents = [sha(_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        parents.append(level[-1])
    return parents


def _merkle_root(leaves: list[bytes]) -> str:
    """The root as hex; "" for no leaves."""
    if not leaves:
        return ""
    level = leaves
    while len(level) > 1:
        level = _parents(level)
    return level[0].hex()


def backfill(apps, schema_editor):
    Cycle = apps.get_model("fund", "SettlementCycle")
    Apportionment = apps.get_model("fund", "Apportionment")
    settled = Cycle.objects.filter(status="settled", participant_count__gt=0).select_related(
        "fund__asset"
    )
    for cycle in settled.iterator(chunk_size=500):
        rows = (
            Apportionment.objects.filter(cycle_id=cycle.id)
            .order_by("rank")
            .values_list("rank", "position__position_id", "position__profit_units", "amount_units")
        )
        root = _merkle_root(
            _cycle_leaves(cycle.fund.asset.code, cycle.id, rows.iterator(chunk_size=10_000))
        )
        Cycle.objects.filter(pk=cycle.pk).update(apportionment_root=root)


def freeze_settled(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE TRIGGER fund_settlementcycle_settled_frozen BEFORE UPDATE OR DELETE ON fund_settlementcycle "
        "FOR EACH ROW WHEN (OLD.status = 'settled') EXECUTE FUNCTION books_refuse_change()"
    )


def unfreeze_settled(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "DROP TRIGGER IF EXISTS fund_settlementcycle_settled_frozen ON fund_settlementcycle"
        )


class Migration(migrations.Migration):
    dependencies = [("fund", "0009_record_hash_chain")]

    operations = [
        migrations.AddField(
            model_name="settlementcycle",
            name="apportionment_root",
            field=models.CharField(
                blank=True,
                default="",
                max_length=64,
                help_text="Merkle root over the apportionments (fund/merkle.py), published when the cycle settles.",
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunPython(freeze_settled, unfreeze_settled),
    ]
