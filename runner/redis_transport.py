"""Kombu's Redis transport, except that a message no consumer could read is set aside.

Upstream, a list entry that is not a kombu message (truncated, not JSON, JSON of another
shape) raises out of the consumer's event loop, and Celery stops the whole worker with
"Unrecoverable error". BRPOP has already taken the entry off the queue, so here it is pushed
onto `rejected:<queue>` (the newest KEEP_REJECTED kept), logged, and the worker goes on.

Registered for the `redis://`, `rediss://` and `redis+socket://` URLs by runner.broker, so
every Celery app and kombu connection of the product uses it.
"""

from __future__ import annotations

import logging
from queue import Empty
from typing import Any

from kombu.transport import redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

log = logging.getLogger(__name__)

KEEP_REJECTED = 1000


class Channel(redis.Channel):
    def _brpop_read(self, **options):
        # Upstream's body (kombu 5.7.0), with the delivery checked first.
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP",
                                                        **options)
            except self.connection_errors:
                self.client.connection.disconnect()  # the next round reconnects
                raise
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            payload = self._readable(item, dest)
            if payload is None:
                raise Empty()
            self.connection._deliver(payload, dest)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _readable(self, raw: bytes, queue: str) -> dict[str, Any] | None:
        """The message, or None once it is set aside: what a consumer could not read."""
        try:
            payload = loads(bytes_to_str(raw))
            self.Message(payload, channel=self)  # what the consumer will build from it
        except Exception as exc:  # noqa: BLE001 - any way of being unreadable is the same
            self._set_aside(raw, queue, exc)
            return None
        return payload

    def _set_aside(self, raw: bytes, queue: str, error: Exception) -> None:
        key = f"rejected:{queue}"
        log.error("Set aside an unreadable message from queue %r (%s: %s) in Redis list %r",
                  queue, type(error).__name__, str(error)[:200], key)
        try:
            with self.conn_or_acquire() as client, client.pipeline() as pipe:
                pipe.lpush(key, raw).ltrim(key, 0, KEEP_REJECTED - 1).execute()
        except self.connection_errors:
            log.warning("Could not keep the unreadable message: the broker is unreachable")


class Transport(redis.Transport):
    Channel = Channel
