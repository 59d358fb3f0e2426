from django.urls import path

from pipelines_ui.runs import consumers

websocket_urlpatterns = [path("ws/runs/<int:run_id>/", consumers.RunConsumer.as_asgi())]
