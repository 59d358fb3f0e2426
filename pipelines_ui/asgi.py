"""ASGI entry point: HTTP through Django, WebSockets through Channels (a token, a ticket, or
the session from a checked origin: runs/routing.py).

HTTP goes through Django's WSGI handler on a fixed pool of threads (a2wsgi), not through its
ASGI handler. Our views are all synchronous; the ASGI handler would start a thread of its own
for every request and hop between the event loop and threads around each middleware (about
ten hops a request), and each request would open a new database connection. On the pool a
request is one hop, and each thread keeps its connection (CONN_MAX_AGE). The request threads
hand their run broadcasts to the server's event loop (runs/broadcast.py).
"""

import asyncio
import os

from a2wsgi import WSGIMiddleware
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipelines_ui.settings")
django_wsgi_app = get_wsgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up first)
from django.conf import settings  # noqa: E402

from pipelines_ui.runs import broadcast  # noqa: E402
from pipelines_ui.runs.routing import websocket_application  # noqa: E402

router = ProtocolTypeRouter(
    {
        "http": WSGIMiddleware(django_wsgi_app, workers=settings.HTTP_THREADS),
        "websocket": websocket_application,
    }
)


async def application(scope, receive, send):
    broadcast.serve_from(asyncio.get_running_loop())
    await router(scope, receive, send)
