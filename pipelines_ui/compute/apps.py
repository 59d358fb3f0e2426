from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "pipelines_ui.compute"
    label = "compute"
