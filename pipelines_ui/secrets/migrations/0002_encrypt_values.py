"""Secrets are encrypted at rest (S17): the column becomes `encrypted_value`, and every value
stored in clear until now is encrypted with the server's newest key. Reversible: going back
decrypts them."""

from django.db import migrations


def _convert(apps, change) -> None:
    Secret = apps.get_model("secrets", "Secret")
    rows = list(Secret.objects.only("pk", "encrypted_value"))
    for row in rows:
        row.encrypted_value = change(row.encrypted_value)
    Secret.objects.bulk_update(rows, ["encrypted_value"], batch_size=500)


def encrypt_values(apps, schema_editor) -> None:
    from pipelines_ui.secrets import keys

    _convert(apps, keys.encrypt)


def decrypt_values(apps, schema_editor) -> None:
    from pipelines_ui.secrets import keys

    _convert(apps, keys.decrypt)


class Migration(migrations.Migration):

    dependencies = [
        ("secrets", "0001_initial"),
    ]

    operations = [
        migrations.RenameField("secret", "value", "encrypted_value"),
        migrations.RunPython(encrypt_values, decrypt_values),
    ]
