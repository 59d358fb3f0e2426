from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "pipelines_ui.registry"
    label = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        # The run engine asks about the registry's steps through these hooks: runs sits below
        # the registry and does not import it.
        from pipelines_ui.registry import services
        from pipelines_ui.runs.engine import component_hooks

        component_hooks.register(services.REGISTRY_COMPONENTS, component_hooks.ComponentHooks(
            inputs=services.registry_inputs, start_problem=services.start_problem,
            succeeded=services.record_step_success))
