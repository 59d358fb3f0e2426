from django.contrib import admin

from pipelines_ui.runs.models import LogLine, MetricPoint, Run, RunTag, StepRun


class StepRunInline(admin.TabularInline):
    model = StepRun
    extra = 0
    fields = ["node", "component", "state", "attempt", "worker", "started_at", "finished_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "pipeline", "version", "status", "trigger", "created_at", "finished_at"]
    list_filter = ["status", "trigger", "workspace"]
    search_fields = ["pipeline__name", "note"]
    list_select_related = ["pipeline", "version__pipeline"]
    raw_id_fields = ["pipeline", "version", "rerun_of", "token", "endpoint", "schedule"]
    inlines = [StepRunInline]


@admin.register(StepRun)
class StepRunAdmin(admin.ModelAdmin):
    list_display = ["node", "run", "component", "state", "attempt", "worker", "finished_at"]
    list_filter = ["state"]
    search_fields = ["node", "fingerprint"]
    raw_id_fields = ["run", "reused_from", "compute_target"]
    exclude = ["consumed"]


@admin.register(RunTag)
class RunTagAdmin(admin.ModelAdmin):
    list_display = ["name", "run"]
    search_fields = ["name"]
    raw_id_fields = ["run"]


@admin.register(LogLine)
class LogLineAdmin(admin.ModelAdmin):
    list_display = ["step_run", "attempt", "index", "stream", "text", "time"]
    raw_id_fields = ["step_run"]
    list_select_related = ["step_run"]


@admin.register(MetricPoint)
class MetricPointAdmin(admin.ModelAdmin):
    list_display = ["run", "step_run", "key", "step", "value", "time"]
    raw_id_fields = ["run", "step_run"]
    list_select_related = ["step_run"]
