from django.contrib import admin

from pipelines_ui.data.models import Artifact, Dataset, DatasetVersion, Datastore


@admin.register(Datastore)
class DatastoreAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "url", "is_default"]
    list_filter = ["workspace"]


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ["digest", "workspace", "size", "produced_by", "created_at"]
    list_filter = ["workspace"]
    search_fields = ["digest"]
    list_select_related = ["workspace", "produced_by"]
    raw_id_fields = ["produced_by"]


class DatasetVersionInline(admin.TabularInline):
    model = DatasetVersion
    extra = 0
    raw_id_fields = ["artifact"]


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "created_at"]
    list_filter = ["workspace"]
    search_fields = ["name"]
    inlines = [DatasetVersionInline]


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ["dataset", "number", "artifact", "created_at"]
    list_select_related = ["dataset", "artifact"]
    raw_id_fields = ["artifact"]
