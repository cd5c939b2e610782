"""The funds' transparency logs (fund/tlog.py): tiles kept as records are appended, built here
for the records already booked; signed checkpoints. On PostgreSQL a tile only grows (its stored
hashes stay a prefix of the new ones) and is never removed; a checkpoint never changes."""

import hashlib
import json
from datetime import UTC

import django.db.models.deletion
from django.db import migrations, models

BATCH = 10_000
TILE = 256 * 32  # a full tile's bytes


# Frozen copies of fund.chain.record_entry, fund.tlog.leaf_hash and fund.tlog.tile_updates as of
# this migration (a migration imports nothing from the application, which may change later).
def record_entry(*, asset, precision, seq, kind, amount_units, balance_after_units, created_at,
                 takeover, cycle_id, corrects_id, reason) -> bytes:  # fmt: skip
    def units(value):
        sign, digits = "-" if value < 0 else "", str(abs(value)).rjust(precision + 1, "0")
        return sign + (f"{digits[:-precision]}.{digits[-precision:]}" if precision else digits)

    fields = [
        asset, str(seq), kind, units(amount_units), units(balance_after_units),
        created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), takeover or "",
        "" if cycle_id is None else str(cycle_id), "" if corrects_id is None else str(corrects_id),
        reason or "",
    ]  # fmt: skip
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _tile_root(data: bytes) -> bytes:
    level = [data[i : i + 32] for i in range(0, len(data), 32)]
    while len(level) > 1:
        level = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest()
                 for i in range(0, len(level), 2)]  # fmt: skip
    return level[0]


def tile_updates(size, partials, leaves):
    updates, level, new = [], 0, b"".join(leaves)
    while new:
        index, width = divmod(size >> (8 * level), 256)
        data = (partials.get(level, b"") if width else b"") + new
        roots = []
        for start in range(0, len(data), TILE):
            chunk = data[start : start + TILE]
            updates.append((level, index + start // TILE, chunk))
            if len(chunk) == TILE:
                roots.append(_tile_root(chunk))
        level, new = level + 1, b"".join(roots)
    return updates


def build_tiles(apps, schema_editor):
    """The tiles of every fund's records in seq order, as ledger_append keeps them from now on."""
    Fund, FundRecord, LogTile = (
        apps.get_model("fund", name) for name in ("Fund", "FundRecord", "LogTile")
    )
    for fund in Fund.objects.select_related("asset"):
        code, places = fund.asset.code, fund.asset.precision
        rows = (
            FundRecord.objects.filter(fund=fund)
            .order_by("seq")
            .values_list(
                "seq",
                "kind",
                "amount_units",
                "balance_after_units",
                "created_at",
                "takeover__external_id",
                "cycle_id",
                "corrects_id",
                "reason",
            )  # fmt: skip
        )
        size, partials, leaves = 0, {}, []
        for (
            seq,
            kind,
            amount,
            balance,
            created_at,
            takeover,
            cycle,
            corrects,
            reason,
        ) in rows.iterator(chunk_size=BATCH):
            entry = record_entry(
                asset=code, precision=places, seq=seq, kind=kind, amount_units=amount,
                balance_after_units=balance, created_at=created_at, takeover=takeover or "",
                cycle_id=cycle, corrects_id=corrects, reason=reason,
            )  # fmt: skip
            leaves.append(leaf_hash(entry))
            if len(leaves) == BATCH:
                size, leaves = _write(LogTile, fund, size, partials, leaves), []
        if leaves:
            _write(LogTile, fund, size, partials, leaves)


def _write(LogTile, fund, size, partials, leaves) -> int:
    """Appends `leaves` to the fund's tiles; `partials` follows the partial tiles. The new size."""
    updates = tile_updates(size, partials, leaves)
    LogTile.objects.bulk_create(
        [
            LogTile(fund=fund, level=level, index=index, width=len(data) // 32, hashes=data)
            for level, index, data in updates
        ],
        update_conflicts=True,
        unique_fields=["fund", "level", "index"],
        update_fields=["width", "hashes"],
    )
    for level, _, data in updates:
        partials[level] = data if len(data) < TILE else b""
    return size + len(leaves)


GROWS = (
    'NEW.fund_id = OLD.fund_id AND NEW.level = OLD.level AND NEW."index" = OLD."index" '
    "AND NEW.width >= OLD.width AND length(NEW.hashes) = 32 * NEW.width "
    "AND substring(NEW.hashes FROM 1 FOR length(OLD.hashes)) = OLD.hashes"
)
TRIGGERS = [
    "CREATE TRIGGER fund_logtile_grows BEFORE UPDATE ON fund_logtile FOR EACH ROW "
    f"WHEN (NOT ({GROWS})) EXECUTE FUNCTION books_refuse_change()",
    "CREATE TRIGGER fund_logtile_kept BEFORE DELETE ON fund_logtile FOR EACH ROW "
    "EXECUTE FUNCTION books_refuse_change()",
    "CREATE TRIGGER fund_logcheckpoint_append_only BEFORE UPDATE OR DELETE ON fund_logcheckpoint "
    "FOR EACH ROW EXECUTE FUNCTION books_refuse_change()",
    *(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION books_refuse_change()"
        for table in ("fund_logtile", "fund_logcheckpoint")
    ),
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
        ("fund", "0012_owner_maintenance_frozen_inputs"),
    ]

    operations = [
        migrations.CreateModel(
            name="LogCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "size",
                    models.PositiveBigIntegerField(help_text="The tree's size: records 1 to size."),
                ),
                ("root_hash", models.CharField(help_text="The tree's root, hex.", max_length=64)),
                ("note", models.TextField(help_text="The signed note, as served.")),
                ("key_id", models.CharField(help_text="The signing key's id, hex.", max_length=8)),
                ("signed_at", models.DateTimeField()),
                (
                    "fund",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="log_checkpoints",
                        to="fund.fund",
                    ),
                ),
            ],
            options={
                "ordering": ["fund", "-size"],
                "get_latest_by": "size",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("fund", "size"), name="log_checkpoint_unique_size"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="LogTile",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("level", models.PositiveSmallIntegerField()),
                ("index", models.PositiveBigIntegerField()),
                ("width", models.PositiveSmallIntegerField(help_text="Hashes held, 1 to 256.")),
                ("hashes", models.BinaryField()),
                (
                    "fund",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="log_tiles",
                        to="fund.fund",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("fund", "level", "index"), name="log_tile_unique"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("width__gte", 1), ("width__lte", 256)),
                        name="log_tile_width_range",
                    ),
                ],
            },
        ),
        migrations.RunPython(build_tiles, migrations.RunPython.noop),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
