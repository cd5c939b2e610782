"""PostgreSQL refuses UPDATE, DELETE and TRUNCATE on the books: fund records, apportionments and
statements. The application never needs either; a correction is a new record.

Maintenance (and the test suite's flush between tests) can lift the refusal for one session
with `SET fund.allow_maintenance = 'on'`; nothing in the application sets it.
"""

from django.db import migrations

TABLES = ["fund_fundrecord", "fund_apportionment", "statements_statement"]

FUNCTION = """
CREATE OR REPLACE FUNCTION books_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('fund.allow_maintenance', true), '') = 'on' THEN
        IF TG_LEVEL = 'ROW' THEN
            RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END IF;
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '% on % is refused: the books are append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)  # its % are PL/pgSQL placeholders, not parameters
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION books_refuse_change()"
        )
        schema_editor.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION books_refuse_change()"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS books_refuse_change()")


class Migration(migrations.Migration):
    dependencies = [("fund", "0007_backfill_running_aggregates"), ("statements", "0003_api")]
    operations = [migrations.RunPython(create, drop)]
