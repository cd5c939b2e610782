"""Set-based inserts for the settlement's large writes: COPY on PostgreSQL, executemany on
SQLite. They bypass Model.save() on purpose; the database constraints still hold every row."""

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.db.models import Field, Lookup
from django.db.models.lookups import In


def _table(model) -> str:
    return model._meta.db_table


def reserve_ids(model, count: int) -> list[int]:
    """Primary keys for `count` new rows, taken before the rows are written."""
    if count == 0:
        return []
    table = _table(model)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The sequence's name is looked up once: inside the series it would be per row.
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            (sequence,) = cursor.fetchone()
            cursor.execute(  # one array, in ascending order, not `count` rows, comes back
                "SELECT array_agg(id ORDER BY id) FROM "
                "(SELECT nextval(%s::regclass) AS id FROM generate_series(1, %s)) AS ids",
                [sequence, count],
            )
            return cursor.fetchone()[0]
        # SQLite: the transaction holds the database's write lock (BEGIN IMMEDIATE), so no one
        # else can take these ids before they are written.
        assert connection.in_atomic_block
        cursor.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')
        (last,) = cursor.fetchone()
        return list(range(last + 1, last + 1 + count))


def insert_rows(model, columns: Sequence[str], rows: Iterable[tuple]) -> None:
    """Writes rows (tuples in `columns` order) into the model's table in one set-based step."""
    table = _table(model)
    column_list = ", ".join(f'"{column}"' for column in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Raw psycopg COPY, in the binary format with the columns' own types (a third less
            # time than text: no value is written out and parsed back); its errors are turned
            # into Django's (OperationalError on a lost connection, which the settle task
            # retries), as the ORM's would be.
            types = _column_types(cursor, table, tuple(columns))
            with (
                connection.wrap_database_errors,
                cursor.cursor.copy(
                    f'COPY "{table}" ({column_list}) FROM STDIN (FORMAT BINARY)'
                ) as copy,
            ):
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(
                f'INSERT INTO "{table}" ({column_list}) VALUES ({placeholders})',
                [_sqlite_row(row) for row in rows],
            )


_TYPES: dict[tuple[str, tuple[str, ...]], list[int]] = {}


def _column_types(cursor, table: str, columns: tuple[str, ...]) -> list[int]:
    """The type oids of a table's columns, in `columns` order (read once per process)."""
    key = (table, columns)
    if key not in _TYPES:
        cursor.execute(
            "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attname = ANY(%s)",
            [f'"{table}"', list(columns)],
        )
        oids = dict(cursor.fetchall())
        _TYPES[key] = [oids[column] for column in columns]
    return _TYPES[key]


def _sqlite_row(row: tuple) -> tuple:
    """Values as Django's SQLite backend stores them: datetimes as naive UTC text, decimals as
    text (the column's NUMERIC affinity then stores them as the ORM would)."""
    adapt = connection.ops.adapt_datetimefield_value
    return tuple(
        adapt(v) if isinstance(v, datetime) else str(v) if isinstance(v, Decimal) else v
        for v in row
    )


@Field.register_lookup
class AnyOf(Lookup):
    """`field__any=[…]`: `field IN (…)` for thousands of values. On PostgreSQL the values travel
    as one array parameter (`field = ANY(%s)`), so that neither psycopg nor the server parses a
    statement with ten thousand placeholders; elsewhere it is Django's own `__in`."""

    lookup_name = "any"
    prepare_rhs = False

    def get_db_prep_lookup(self, value, connection):
        return "%s", [list(value)]

    def as_sql(self, compiler, connection):
        if connection.vendor != "postgresql":
            return In(self.lhs, list(self.rhs)).as_sql(compiler, connection)
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} = ANY({rhs})", [*lhs_params, *rhs_params]
