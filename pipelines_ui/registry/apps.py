from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "pipelines_ui.registry"
    label = "registry"
    verbose_name = "Model registry"
