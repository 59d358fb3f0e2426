from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "pipelines_ui.runs"
    label = "runs"
