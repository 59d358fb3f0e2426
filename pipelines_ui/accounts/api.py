from rest_framework import serializers, viewsets

from pipelines_ui.accounts.models import Workspace
from pipelines_ui.accounts.services import member_workspaces


class WorkspaceSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Workspace
        fields = ["id", "name", "slug", "description", "created_at", "role"]

    def get_role(self, workspace: Workspace) -> str | None:
        return getattr(workspace, "caller_role", None)


class WorkspaceViewSet(viewsets.ReadOnlyModelViewSet):
    """The caller's workspaces, with the caller's role in each."""

    serializer_class = WorkspaceSerializer

    def get_queryset(self):
        from django.db.models import F

        return (
            member_workspaces(self.request.user)
            .annotate(caller_role=F("memberships__role"))
            .order_by("name")
        )
