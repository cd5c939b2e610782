"""PostgreSQL: maintenance is the tables' owner's alone, and what a settlement was computed from
is frozen like the books.

1. The books' triggers (0008, 0010) let `SET fund.allow_maintenance = 'on'` through only for a
   role that is the table's owner or a member of it (pg_has_role on pg_class.relowner; a
   superuser counts). The application connects as a runtime role that owns nothing (README,
   "Production"), so setting the variable does nothing for it.
2. Liquidation takeovers and position profits, a settled cycle's inputs, are append-only (the
   application never changes or removes one), and none is added to a cycle that no longer takes
   input (settling, failed or settled): an AFTER INSERT statement trigger reads the batch's
   cycles once, COPY included. A cycle that has stopped taking input never takes it again, and
   its period, fund and ratios do not change.
3. Apportionments are written only into a cycle that is settling (its posting).
4. A fund's balance and chain head are always its newest record's running balance and hash (a
   row trigger on fund_fund, one index lookup), and each appended record's running balance
   follows the one before it (a statement trigger over the new rows): the balance is the sum of
   the records, enforced by the database.

The trigger functions pin their search_path, so that nobody's temporary table or function can
stand in for the tables and functions they read.
"""

from django.db import migrations

# The functions name the tables without a schema; each is pinned to pg_catalog, the schema the
# migration runs in, then pg_temp (last, so that a temporary table cannot shadow a real one).
PATH = "SET search_path = pg_catalog, {schema}, pg_temp"

MAINTENANCE = """
CREATE OR REPLACE FUNCTION books_maintenance(relid oid) RETURNS boolean
LANGUAGE sql STABLE {path} AS $$
    SELECT coalesce(current_setting('fund.allow_maintenance', true), '') = 'on'
       AND pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = relid), 'MEMBER')
$$;
"""

REFUSE = """
CREATE OR REPLACE FUNCTION books_refuse_change() RETURNS trigger LANGUAGE plpgsql {path} AS $$
BEGIN
    IF books_maintenance(TG_RELID) THEN
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

# 0008's function, for the way back.
REFUSE_0008 = """
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

# TG_ARGV[0]: the statuses the cycle of every new row must have.
INPUT_INTO_CYCLE = """
CREATE OR REPLACE FUNCTION books_refuse_rows_of_cycles() RETURNS trigger
LANGUAGE plpgsql {path} AS $$
DECLARE
    bad record;
BEGIN
    SELECT c.id, c.status INTO bad FROM fund_settlementcycle c
     WHERE c.id IN (SELECT DISTINCT n.cycle_id FROM new_rows n)
       AND NOT c.status = ANY (TG_ARGV[0]::text[])
     LIMIT 1;
    IF FOUND AND NOT books_maintenance(TG_RELID) THEN
        RAISE EXCEPTION 'INSERT on % is refused: cycle % is %', TG_TABLE_NAME, bad.id, bad.status
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$;
"""

FUND_FOLLOWS_LEDGER = """
CREATE OR REPLACE FUNCTION books_fund_follows_ledger() RETURNS trigger
LANGUAGE plpgsql {path} AS $$
DECLARE
    last_after bigint := 0;
    last_hash text := '';
BEGIN
    SELECT r.balance_after_units, r.hash INTO last_after, last_hash FROM fund_fundrecord r
     WHERE r.fund_id = NEW.id ORDER BY r.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        last_after := 0;
        last_hash := '';
    END IF;
    IF (NEW.balance_units = last_after AND NEW.head_hash = last_hash)
       OR books_maintenance(TG_RELID) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% on % is refused: fund %''s balance % is not its newest record''s %',
        TG_OP, TG_TABLE_NAME, NEW.id, NEW.balance_units, last_after
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'A balance moves only with a record appended to the fund''s ledger.';
END
$$;
"""

RECORDS_FOLLOW = """
CREATE OR REPLACE FUNCTION books_records_follow() RETURNS trigger
LANGUAGE plpgsql {path} AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.fund_id, n.seq INTO bad FROM (
        SELECT fund_id, seq, amount_units, balance_after_units,
               lag(seq) OVER w AS prev_seq, lag(balance_after_units) OVER w AS prev_after
          FROM new_rows WINDOW w AS (PARTITION BY fund_id ORDER BY seq)
    ) n
     WHERE CASE WHEN n.prev_seq IS NOT NULL THEN
             n.seq <> n.prev_seq + 1 OR n.balance_after_units <> n.prev_after + n.amount_units
         ELSE n.balance_after_units IS DISTINCT FROM n.amount_units + CASE WHEN n.seq = 1 THEN 0 ELSE
             (SELECT p.balance_after_units FROM fund_fundrecord p
               WHERE p.fund_id = n.fund_id AND p.seq = n.seq - 1) END
     END
     LIMIT 1;
    IF FOUND AND NOT books_maintenance(TG_RELID) THEN
        RAISE EXCEPTION 'INSERT on % is refused: record #% of fund % does not follow the one before it',
            TG_TABLE_NAME, bad.seq, bad.fund_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$;
"""

INPUTS = ["fund_liquidationtakeover", "fund_positionprofit"]
NOT_TAKING_INPUT = "OLD.status IN ('settling', 'failed')"
CYCLE_INPUTS_CHANGE = (
    "NEW.status IN ('open', 'closed') OR NEW.fund_id IS DISTINCT FROM OLD.fund_id "
    "OR NEW.starts_at IS DISTINCT FROM OLD.starts_at OR NEW.ends_at IS DISTINCT FROM OLD.ends_at "
    "OR NEW.fund_ratio IS DISTINCT FROM OLD.fund_ratio "
    "OR NEW.screening_ratio IS DISTINCT FROM OLD.screening_ratio"
)

TRIGGERS = [
    *(
        statement
        for table in INPUTS
        for statement in (
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION books_refuse_change()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION books_refuse_change()",
            f"CREATE TRIGGER {table}_into_accepting_cycle AFTER INSERT ON {table} "
            "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
            "EXECUTE FUNCTION books_refuse_rows_of_cycles('{open,closed}')",
        )
    ),
    "CREATE TRIGGER fund_apportionment_into_settling_cycle AFTER INSERT ON fund_apportionment "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION books_refuse_rows_of_cycles('{settling}')",
    "CREATE TRIGGER fund_settlementcycle_inputs_fixed BEFORE UPDATE ON fund_settlementcycle "
    f"FOR EACH ROW WHEN ({NOT_TAKING_INPUT} AND ({CYCLE_INPUTS_CHANGE})) "
    "EXECUTE FUNCTION books_refuse_change()",
    "CREATE TRIGGER fund_settlementcycle_claimed_kept BEFORE DELETE ON fund_settlementcycle "
    f"FOR EACH ROW WHEN ({NOT_TAKING_INPUT}) EXECUTE FUNCTION books_refuse_change()",
    "CREATE TRIGGER fund_fund_follows_ledger BEFORE UPDATE ON fund_fund FOR EACH ROW "
    "WHEN (NEW.balance_units IS DISTINCT FROM OLD.balance_units "
    "OR NEW.head_hash IS DISTINCT FROM OLD.head_hash) "
    "EXECUTE FUNCTION books_fund_follows_ledger()",
    "CREATE TRIGGER fund_fund_starts_empty BEFORE INSERT ON fund_fund FOR EACH ROW "
    "EXECUTE FUNCTION books_fund_follows_ledger()",
    "CREATE TRIGGER fund_fundrecord_follows AFTER INSERT ON fund_fundrecord "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION books_records_follow()",
]

DROPPED = [
    *(
        f"DROP TRIGGER IF EXISTS {table}_{name} ON {table}"
        for table in INPUTS
        for name in ("append_only", "no_truncate", "into_accepting_cycle")
    ),
    "DROP TRIGGER IF EXISTS fund_apportionment_into_settling_cycle ON fund_apportionment",
    "DROP TRIGGER IF EXISTS fund_settlementcycle_inputs_fixed ON fund_settlementcycle",
    "DROP TRIGGER IF EXISTS fund_settlementcycle_claimed_kept ON fund_settlementcycle",
    "DROP TRIGGER IF EXISTS fund_fund_follows_ledger ON fund_fund",
    "DROP TRIGGER IF EXISTS fund_fund_starts_empty ON fund_fund",
    "DROP TRIGGER IF EXISTS fund_fundrecord_follows ON fund_fundrecord",
    "DROP FUNCTION IF EXISTS books_refuse_rows_of_cycles()",
    "DROP FUNCTION IF EXISTS books_fund_follows_ledger()",
    "DROP FUNCTION IF EXISTS books_records_follow()",
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT quote_ident(current_schema())")
        (schema,) = cursor.fetchone()
    path = PATH.format(schema=schema)
    for function in (MAINTENANCE, REFUSE, INPUT_INTO_CYCLE, FUND_FOLLOWS_LEDGER, RECORDS_FOLLOW):
        # Their % are PL/pgSQL placeholders, not parameters.
        schema_editor.execute(function.replace("{path}", path), params=None)
    for statement in TRIGGERS:
        schema_editor.execute(statement, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in DROPPED:
        schema_editor.execute(statement, params=None)
    schema_editor.execute(REFUSE_0008, params=None)
    schema_editor.execute("DROP FUNCTION IF EXISTS books_maintenance(oid)", params=None)


class Migration(migrations.Migration):
    dependencies = [("fund", "0011_correction_action_idempotency_expiry")]
    operations = [migrations.RunPython(create, drop)]
