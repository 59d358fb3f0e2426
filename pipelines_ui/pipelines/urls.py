from django.urls import path

from pipelines_ui.pipelines import views

app_name = "pipelines"
urlpatterns = [
    path("", views.list_pipelines, name="list"),
    path("<int:pipeline_id>/edit/", views.editor, name="editor"),
    path("<int:pipeline_id>/versions/<int:number>/", views.version, name="version"),
]
