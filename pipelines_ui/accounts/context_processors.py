from pipelines_ui.accounts.services import current_workspace, member_workspaces


def workspaces(request):
    """The workspace switcher's data, for the base template."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {
        "workspaces": list(member_workspaces(request.user).order_by("name")),
        "current_workspace": current_workspace(request),
    }
