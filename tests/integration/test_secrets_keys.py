"""S17: workspace secrets are encrypted at rest, old clear-text values by a migration, and the
key can be rotated; `make up` keeps one key in var/."""

import stat
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from pipelines_ui.management.commands import up
from pipelines_ui.secrets.models import Secret, SecretUnreadable

BEFORE = [("secrets", "0001_initial")]
AFTER = [("secrets", "0002_encrypt_values")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def clear_text_rows(transactional_db, workspace):
    """Two secrets as the code before encryption stored them; the latest schema after."""
    old = migrate(BEFORE).get_model("secrets", "Secret")
    old.objects.create(workspace_id=workspace.pk, name="API_KEY", value="clear-value-1")
    old.objects.create(workspace_id=workspace.pk, name="TOKEN", value="clear-value-2")
    yield
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())  # as every test expects


def stored(name: str) -> str:
    return Secret.objects.values_list("encrypted_value", flat=True).get(name=name)


def test_the_migration_encrypts_the_values_stored_in_clear(clear_text_rows, settings):
    migrate(AFTER)
    key = Fernet(settings.PIPELINES_SECRETS_KEY)
    assert key.decrypt(stored("API_KEY").encode()) == b"clear-value-1"
    assert key.decrypt(stored("TOKEN").encode()) == b"clear-value-2"
    old = migrate(BEFORE).get_model("secrets", "Secret")  # and back: decrypted again
    assert sorted(old.objects.values_list("value", flat=True)) == ["clear-value-1",
                                                                  "clear-value-2"]


def test_the_migration_refuses_to_run_without_a_key(clear_text_rows, settings):
    settings.PIPELINES_SECRETS_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="PIPELINES_SECRETS_KEY is not set"):
        migrate(AFTER)


def test_rotation_reencrypts_every_value_with_the_newest_key(db, workspace, settings):
    old_key, new_key = (Fernet.generate_key().decode() for _ in range(2))
    settings.PIPELINES_SECRETS_KEY = old_key
    Secret.objects.create(workspace=workspace, name="API_KEY", value="v1")
    Secret.objects.create(workspace=workspace, name="TOKEN", value="v2")
    settings.PIPELINES_SECRETS_KEY = f"{new_key},{old_key}"
    out = StringIO()
    call_command("rotate_secrets_key", stdout=out)
    assert "2 secrets re-encrypted" in out.getvalue()
    assert Fernet(new_key).decrypt(stored("TOKEN").encode()) == b"v2"
    settings.PIPELINES_SECRETS_KEY = new_key
    assert [s.value for s in Secret.objects.order_by("name")] == ["v1", "v2"]


def test_rotation_names_the_secrets_no_key_decrypts(db, workspace, settings):
    Secret.objects.create(workspace=workspace, name="API_KEY", value="v1")
    settings.PIPELINES_SECRETS_KEY = Fernet.generate_key().decode()  # the old one is lost
    Secret.objects.create(workspace=workspace, name="TOKEN", value="v2")
    with pytest.raises(CommandError, match="1 secrets could not be decrypted with any key of "
                                           "PIPELINES_SECRETS_KEY: team-a/API_KEY"):
        call_command("rotate_secrets_key", stdout=StringIO())
    assert Secret.objects.get(name="TOKEN").value == "v2"


def test_reading_a_value_under_an_unknown_key_names_the_secret(db, workspace, settings):
    secret = Secret.objects.create(workspace=workspace, name="API_KEY", value="v1")
    settings.PIPELINES_SECRETS_KEY = Fernet.generate_key().decode()
    with pytest.raises(SecretUnreadable,
                       match="secret 'API_KEY' of workspace .* cannot be decrypted"):
        secret.value  # noqa: B018


def test_up_writes_its_keys_to_var_once_readable_by_its_user_only(tmp_path, settings,
                                                                   monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    settings.SECRET_KEY_FILE = tmp_path / "var" / "secret.key"
    settings.PIPELINES_SECRETS_KEY_FILE = tmp_path / "var" / "secrets.key"
    settings.PIPELINES_SECRETS_KEY = ""
    up._keep_keys()
    first = settings.PIPELINES_SECRETS_KEY, settings.SECRET_KEY
    Fernet(first[0])  # a usable key
    assert len(first[1]) == 50 and "insecure" not in first[1]
    paths = settings.PIPELINES_SECRETS_KEY_FILE, settings.SECRET_KEY_FILE
    for path, key in zip(paths, first, strict=True):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().strip() == key
    settings.PIPELINES_SECRETS_KEY = settings.SECRET_KEY = ""  # the next start: the same keys
    up._keep_keys()
    assert (settings.PIPELINES_SECRETS_KEY, settings.SECRET_KEY) == first
    assert sorted(paths[0].parent.iterdir()) == sorted(paths)  # no draft left behind
