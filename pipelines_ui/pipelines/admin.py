from django.contrib import admin

from pipelines_ui.pipelines.models import Component, Endpoint, Pipeline, PipelineVersion, Schedule


@admin.register(Component)
class ComponentAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "title", "category", "workspace", "created_at"]
    list_filter = ["category", "workspace"]
    search_fields = ["name", "title"]


class VersionInline(admin.TabularInline):
    model = PipelineVersion
    extra = 0
    fields = ["number", "message", "created_by", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "revision", "updated_at"]
    list_filter = ["workspace"]
    search_fields = ["name", "description"]
    inlines = [VersionInline]


@admin.register(PipelineVersion)
class PipelineVersionAdmin(admin.ModelAdmin):
    list_display = ["pipeline", "number", "message", "created_by", "created_at"]
    list_select_related = ["pipeline", "created_by"]
    search_fields = ["pipeline__name", "message"]

    def get_readonly_fields(self, request, obj=None):
        # Versions are immutable: everything is read-only once saved.
        return [f.name for f in self.model._meta.fields] if obj else []


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "pipeline", "default_version", "enabled"]
    list_filter = ["enabled", "workspace"]
    search_fields = ["name"]
    list_select_related = ["workspace", "pipeline", "default_version__pipeline"]


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ["name", "endpoint", "cron", "time_zone", "enabled"]
    list_filter = ["enabled"]
    list_select_related = ["endpoint"]
