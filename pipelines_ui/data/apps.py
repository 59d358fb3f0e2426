from django.apps import AppConfig


class DataConfig(AppConfig):
    name = "pipelines_ui.data"
    label = "data"
