"""Bounds on starting runs: a rate per caller and per endpoint, and a cap on runs in flight
(docs/reliability.md S9).

DRF's throttles read, compare and write a cache entry in three steps, so concurrent requests
all pass them (encode/django-rest-framework#8127). Here each trigger takes a slot of a sliding
one-minute window in one atomic step: a Lua script over a sorted set in Redis (REDIS_URL, or
the embedded Valkey), shared by every web process. A sliding window, not
INCR on fixed minutes, so that no 60 s ever holds more than the limit, even across a minute's
edge. If Redis does not answer, this process counts instead, in a log under a lock: a trigger
never fails because the limiter is down (R5).

The cap on runs not finished is counted with the endpoint's (or pipeline's) row locked, in the
transaction that creates the run, so two triggers cannot both take the last slot.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from rest_framework import status
from rest_framework.exceptions import Throttled

from pipelines_ui.redis_clients import redis_client
from pipelines_ui.runs.models import Run

log = logging.getLogger(__name__)

WINDOW_S = 60
KEY_PREFIX = "pui:triggers"
CAP_RETRY_AFTER_S = 30


class TriggerLimited(Throttled):
    """429 with Retry-After and a detail that names the limit and its setting."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, detail: str, wait: int) -> None:
        super().__init__(wait=wait, detail=detail)
        self.detail = detail  # without DRF's "Expected available in" suffix: ours says it


def check_trigger_rate(request, target: Any) -> None:
    """Count one run trigger for the caller and for `target` (an Endpoint or a Pipeline);
    429 when either is over its limit for the current minute."""
    token = getattr(request, "auth", None)
    prefix = getattr(token, "prefix", None)
    caller = (f"token:{token.pk}:{prefix}" if prefix else f"user:{_identity(request.user)}")
    kind = type(target).__name__.lower()
    budgets = [
        (f"caller:{caller}", settings.PIPELINES_TRIGGER_RATE,
         "for this caller (PIPELINES_TRIGGER_RATE)"),
        (f"{kind}:{_identity(target)}", settings.PIPELINES_TARGET_TRIGGER_RATE,
         f"for this {kind} (PIPELINES_TARGET_TRIGGER_RATE)"),
    ]
    for key, limit, whom in budgets:
        wait = take(key, limit)
        if wait:
            raise TriggerLimited(f"Too many run triggers: the limit is {limit} per minute "
                                 f"{whom}. Retry in {wait} s.", wait)


@contextlib.contextmanager
def run_slot(target: Any) -> Iterator[None]:
    """Within: a transaction holding `target`'s row lock, in which a new run may be created
    only if fewer than PIPELINES_MAX_ACTIVE_RUNS of its runs are not finished (else 429)."""
    kind = type(target).__name__.lower()
    with transaction.atomic():
        type(target).objects.select_for_update().filter(pk=target.pk).exists()
        active = Run.objects.filter(**{kind: target}).exclude(
            status__in=("succeeded", "failed", "canceled")).count()
        cap = settings.PIPELINES_MAX_ACTIVE_RUNS
        if active >= cap:
            raise TriggerLimited(f"This {kind} has {active} runs not finished, the cap "
                                 f"(PIPELINES_MAX_ACTIVE_RUNS is {cap}); wait for some to "
                                 "finish or cancel them.", CAP_RETRY_AFTER_S)
        yield


def take(key: str, limit: int) -> int:
    """Take one of `limit` slots of `key` in the last WINDOW_S seconds: 0 if taken, else the
    seconds until the oldest slot frees (nothing is taken then)."""
    now = time.time()
    full_key = f"{KEY_PREFIX}:{key}"
    try:
        taken, oldest = _redis().eval(_TAKE_SCRIPT, 1, full_key, now, WINDOW_S, limit,
                                      uuid.uuid4().hex)
        return 0 if taken else _wait(float(oldest), now)
    except redis.RedisError as exc:
        log.warning("trigger limits counted in this process: Redis did not answer (%s)", exc)
    with _local_lock:
        log_ = _local.setdefault(full_key, collections.deque())
        while log_ and log_[0] <= now - WINDOW_S:
            log_.popleft()
        if len(log_) >= limit:
            return _wait(log_[0], now)
        log_.append(now)
        return 0


def _wait(oldest: float, now: float) -> int:
    return max(1, math.ceil(oldest + WINDOW_S - now))


# One atomic step in Redis: forget what left the window, count, and take a slot if one is
# free. Refused triggers take nothing, so a caller that keeps trying is let in as slots free.
_TAKE_SCRIPT = """
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then
  return {0, redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]}
end
redis.call('ZADD', key, now, ARGV[4])
redis.call('EXPIRE', key, math.ceil(window) + 1)
return {1, '0'}
"""

_local: dict[str, collections.deque[float]] = {}
_local_lock = threading.Lock()
def _redis() -> redis.Redis:
    return redis_client(timeout_s=0.5)


def _identity(obj: Any) -> str:
    """The row's id plus its creation time: ids come back when a database is recreated, and
    the counters outlive it in Redis."""
    created = getattr(obj, "created_at", None) or getattr(obj, "date_joined", None)
    return f"{obj.pk}:{int(created.timestamp() * 1e6) if created else 0}"
