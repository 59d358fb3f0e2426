from django.urls import path

from pipelines_ui.compute import views

app_name = "compute"
urlpatterns = [
    path("", views.targets, name="targets"),
    path("status/", views.status, name="status"),
]
