from django.contrib import admin

from pipelines_ui.registry.models import ModelVersion, RegisteredModel


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0
    fields = ["number", "artifact", "metrics", "step_run", "deployed_at", "created_at"]
    raw_id_fields = ["artifact", "step_run"]


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "created_at"]
    list_filter = ["workspace"]
    search_fields = ["name"]
    inlines = [ModelVersionInline]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["model", "number", "artifact", "deployed_at", "created_at"]
    list_filter = ["model__workspace"]
    list_select_related = ["model", "artifact"]
    raw_id_fields = ["artifact", "step_run", "created_by"]
