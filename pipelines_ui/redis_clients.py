"""The server's own Redis client (run-trigger limits, sign-in throttling, socket tickets): one
per URL and timeout, made once, since each keeps a connection pool."""

from __future__ import annotations

import redis
from django.conf import settings

_clients: dict[tuple[str, float], redis.Redis] = {}


def redis_client(timeout_s: float) -> redis.Redis:
    """The client for settings.REDIS_URL, waiting at most `timeout_s` to connect or answer."""
    key = (settings.REDIS_URL, timeout_s)
    client = _clients.get(key)
    if client is None:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout_s,
                                      socket_connect_timeout=timeout_s)
        _clients[key] = client
    return client
