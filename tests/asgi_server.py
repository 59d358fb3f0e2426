"""An ASGI live server for browser and socket tests: uvicorn serving pipelines_ui.asgi (HTTP and
WebSockets) against the test database named in PIPELINES_TEST_DB_NAME.

pytest-django's live_server is WSGI (no WebSockets), and Channels' live server needs daphne;
this runs the same ASGI stack as production, in its own process, so worker reports,
broadcasts and sockets meet in one server as they do under `make up`.
"""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipelines_ui.settings")

from django.conf import settings  # noqa: E402

# Before Django opens a connection: point it at the test database the test process made.
settings.DATABASES["default"]["NAME"] = os.environ["PIPELINES_TEST_DB_NAME"]

import uvicorn  # noqa: E402

if __name__ == "__main__":
    uvicorn.run("pipelines_ui.asgi:application", host="127.0.0.1", port=int(sys.argv[1]),
                log_level="warning", ws="websockets", lifespan="off")
