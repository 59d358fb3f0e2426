from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "pipelines_ui.accounts"
    label = "accounts"
