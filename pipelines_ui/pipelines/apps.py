from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines_ui.pipelines"
    label = "pipelines"
