"""/healthz: is each part the product depends on answering? It also tells how the steps of each
online worker are kept from the worker's and the server's state (docs/reliability.md S11): a
level of "none" is a warning, not an outage."""

from __future__ import annotations

import time
import uuid
from collections import Counter

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from kombu import Connection

from pipelines_ui.compute.models import Worker


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_broker() -> None:
    with Connection(
        settings.CELERY_BROKER_URL,
        transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        connect_timeout=2,
    ) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def check_channel_layer() -> None:
    async def round_trip() -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel("healthz.")
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "healthz", "token": token})
        message = await layer.receive(channel)
        if message.get("token") != token:
            raise RuntimeError("the channel layer returned another message")

    async_to_sync(round_trip)()


def step_isolation() -> dict:
    """How many online workers announced each level: step-user, landlock or none (a worker
    that announced nothing counts as none). Counts only: the page is public, and which hosts
    and targets there are is for members (the compute page names them)."""
    now = timezone.now()
    counts: Counter[str] = Counter()
    for worker in Worker.objects.filter(stopped=False):
        if worker.is_online(now):
            counts[((worker.resources or {}).get("isolation") or {}).get("level", "none")] += 1
    return {"levels": sorted(counts), "workers": dict(sorted(counts.items())),
            "warning": ("steps of some workers are not isolated from the worker's user"
                        if "none" in counts else None)}


CHECKS = {"database": check_database, "broker": check_broker, "channel_layer": check_channel_layer}


def healthz(request):
    results = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            check()
        except Exception as exc:  # any failure of a part is what this page reports
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        else:
            results[name] = {"ok": True}
        results[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    healthy = all(result["ok"] for result in results.values())
    isolation = step_isolation() if results["database"]["ok"] else None
    return JsonResponse(
        {"status": "ok" if healthy else "unhealthy", "checks": results,
         "step_isolation": isolation},
        status=200 if healthy else 503,
    )
