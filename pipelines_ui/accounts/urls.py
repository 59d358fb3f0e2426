from django.urls import path

from pipelines_ui.accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("workspace/", views.switch, name="switch"),
]
