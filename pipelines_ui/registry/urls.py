from django.urls import path

from pipelines_ui.registry import views

app_name = "registry"
urlpatterns = [
    path("", views.models, name="models"),
]
