"""Whether the broker restarted since the reconciler last looked (R17).

A Redis broker that restarts without its data (no AOF, or a fresh instance) has lost every job
it held; the queued attempts would then wait STEP_QUEUED_TIMEOUT_S before being sent again.
Redis names each start with a random `run_id` (INFO server). The reconciler remembers the one
it saw, in this process and in the broker itself under RUN_ID_KEY, set with GETSET so that
one reconciler alone sees a change there. A change there is a restart; so is a change in the
process's memory while the key is missing, as it is once lost with the data it stands for, to
the one reconciler whose GETSET found it missing. The first look of a fresh process at a fresh
broker sees no restart.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import redis

log = logging.getLogger(__name__)

RUN_ID_KEY = "pipelines:broker-run-id"
TIMEOUT_S = 2.0  # the reconciler must not hang on a broker that does not answer

_seen: dict[str, str] = {}  # broker URL -> the run id this process saw last


def broker_restarted(url: str) -> bool:
    """Whether the Redis broker at `url` restarted since the last call; False for other
    brokers, and while it does not answer."""
    client = _client(url)
    if client is None:
        return False
    try:
        run_id = client.info("server")["run_id"]
        stored = client.getset(RUN_ID_KEY, run_id)
    except (redis.RedisError, OSError, KeyError):
        log.debug("could not read the broker's run id", exc_info=True)
        return False
    finally:
        client.close()
    remembered, _seen[url] = _seen.get(url), run_id
    changed_here = remembered is not None and remembered != run_id
    changed_there = stored is not None and stored.decode() != run_id
    # A change seen here counts only while the key was lost with the data: once a reconciler
    # has set the new run id there, it has handled the restart, and the others must not again.
    restarted = changed_there or (stored is None and changed_here)
    if restarted:
        log.warning("the broker restarted (run id %s); sending queued steps again", run_id)
    return restarted


def _client(url: str) -> redis.Redis | None:
    parts = urlsplit(url)
    if parts.scheme == "redis+socket":
        db = parse_qs(parts.query).get("virtual_host", ["0"])[0] or "0"
        return redis.Redis(unix_socket_path=parts.path, db=int(db), password=parts.password,
                           socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
    if parts.scheme in ("redis", "rediss"):
        return redis.Redis.from_url(url, socket_timeout=TIMEOUT_S,
                                    socket_connect_timeout=TIMEOUT_S)
    return None
