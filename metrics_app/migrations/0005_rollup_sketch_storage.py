"""Sketches are read whole and rarely compress: PostgreSQL keeps them out of line uncompressed
(STORAGE EXTERNAL), so reading a window does not decompress them (about a third of its time)."""

from django.db import migrations


def external_storage(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in ("metrics_app_latencyrollup", "metrics_app_rollupwindowgroup"):
        schema_editor.execute(f"ALTER TABLE {table} ALTER COLUMN sketch SET STORAGE EXTERNAL")


class Migration(migrations.Migration):
    dependencies = [("metrics_app", "0004_rollups")]

    operations = [migrations.RunPython(external_storage, migrations.RunPython.noop)]
