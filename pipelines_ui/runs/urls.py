from django.urls import path

from pipelines_ui.runs import views

app_name = "runs"
urlpatterns = [
    path("", views.history, name="history"),
    path("compare/", views.compare, name="compare"),
    path("<int:run_id>/", views.detail, name="detail"),
    path("<int:run_id>/steps/<str:node>/log.txt", views.step_log, name="log"),
    path("<int:run_id>/artifacts/<str:digest>/", views.artifact, name="artifact"),
    path("<int:run_id>/artifacts/<str:digest>/image", views.artifact_image,
         name="artifact_image"),
]
