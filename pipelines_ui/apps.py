from django.apps import AppConfig
from django.conf import settings


class PipelinesUIConfig(AppConfig):
    """The project itself: operator commands (up, seed_demo), system checks, the base template."""

    name = "pipelines_ui"
    label = "pipelines_ui"
    verbose_name = "Pipelines UI"

    def ready(self) -> None:
        from pipelines_ui import checks  # noqa: F401  (registers the checks)

        # SQLite and the embedded datastore live here; create it before the first connection.
        # WhiteNoise warns about a missing STATIC_ROOT even when it serves from the finders.
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        settings.STATIC_ROOT.mkdir(parents=True, exist_ok=True)
