"""Append-only audit tables, enforced by PostgreSQL itself.

UPDATE and DELETE on the audit event and checkpoint tables raise. (TRUNCATE is left to
database grants in production: the application role is granted INSERT and SELECT only.)
On SQLite the model layer refuses; there is no database-level guard.
"""

from django.db import migrations

TABLES = ["sde_auditevent", "sde_auditcheckpoint"]

CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION sde_audit_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CREATE_FUNCTION, params=None)  # no %-interpolation
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION sde_audit_refuse_change()"
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS sde_audit_refuse_change()")


class Migration(migrations.Migration):
    dependencies = [("sde", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
