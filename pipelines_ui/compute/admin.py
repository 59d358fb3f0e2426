from django.contrib import admin

from pipelines_ui.compute.models import ComputeTarget, Worker


class WorkerInline(admin.TabularInline):
    model = Worker
    extra = 0
    fields = ["hostname", "slots", "busy", "last_seen_at", "stopped"]
    readonly_fields = fields


@admin.register(ComputeTarget)
class ComputeTargetAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "is_default", "max_concurrency", "python", "created_at"]
    list_filter = ["workspace"]
    search_fields = ["name", "description"]
    exclude = ["worker_key_hash"]
    inlines = [WorkerInline]


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["hostname", "target", "slots", "busy", "state", "last_seen_at"]
    list_filter = ["target"]
    list_select_related = ["target"]
