from django.apps import AppConfig


class SecretsConfig(AppConfig):
    name = "pipelines_ui.secrets"
    label = "secrets"
    verbose_name = "Workspace secrets"
