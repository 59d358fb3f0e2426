from django.contrib import admin
from django.urls import include, path

from pipelines_ui import health, views
from pipelines_ui.accounts.views import throttle_sign_ins

# The admin's sign-in page takes passwords too: failures there count as on ours (S18). Set on
# the site before its URLs are read below, which route admin/login/ to site.login.
admin.site.login = throttle_sign_ins(admin.site.login)

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("accounts/", include("pipelines_ui.accounts.urls")),
    path("pipelines/", include("pipelines_ui.pipelines.urls")),
    path("runs/", include("pipelines_ui.runs.urls")),
    path("compute/", include("pipelines_ui.runs.compute_page")),
    path("models/", include("pipelines_ui.registry.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("pipelines_ui.api_urls")),
]
