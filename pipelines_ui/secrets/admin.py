from django.contrib import admin

from pipelines_ui.secrets.models import Secret


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "created_by", "updated_at"]
    # Values are set through the API; the admin never shows them.
    exclude = ["encrypted_value"]
    readonly_fields = ["workspace", "name", "created_by", "created_at", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False
