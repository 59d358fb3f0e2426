"""Failed sign-ins are bounded per username and per client address (docs/reliability.md S18).

Each password sign-in takes a slot in two sliding windows of SIGN_IN_FAILURE_WINDOW_S seconds
before its password is checked, one for the username and one for the address; a sign-in that
succeeds gives its slots back, so what stays in a window are failures. While either window is
full, attempts are refused before any password is checked: a correct password does not get in
either, until the oldest failure leaves the window. Taking the slot first, rather than counting
after the check, means concurrent guesses cannot all pass a count that stood at four.

The windows are sorted sets in Redis (REDIS_URL, or the embedded Valkey), shared by every web
process and changed by one Lua script at a time. If Redis does not answer, this process counts
on its own: signing in never fails because the counter is down.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass

import redis
from django.conf import settings

from pipelines_ui.redis_clients import redis_client

log = logging.getLogger(__name__)

KEY_PREFIX = "pui:sign-in"
_clock = time.time  # the windows' clock (tests move it on)


@dataclass(frozen=True)
class Attempt:
    """A sign-in under way: the slot it holds in each window."""

    keys: tuple[str, ...]
    member: str


@dataclass(frozen=True)
class Refusal:
    """The attempt may not be made: whose window is full, and for how long yet."""

    scope: str  # "account" or "address"
    wait_s: int

    @property
    def message(self) -> str:
        whom = "for this account" if self.scope == "account" else "from this address"
        minutes = max(1, math.ceil(self.wait_s / 60))
        unit = "minute" if minutes == 1 else "minutes"
        return f"Too many failed sign-ins {whom}; try again in {minutes} {unit}."


def begin(username: str, address: str) -> Attempt | Refusal:
    """Take a slot for a sign-in as `username` from `address`, or say why it may not be made."""
    windows = [(username_key(username), settings.SIGN_IN_FAILURES_PER_USERNAME, "account"),
               (address_key(address), settings.SIGN_IN_FAILURES_PER_ADDRESS, "address")]
    keys = tuple(key for key, _limit, _scope in windows)
    limits = [limit for _key, limit, _scope in windows]
    member = uuid.uuid4().hex
    full, oldest = _take(keys, limits, member, _clock())
    if full is None:
        return Attempt(keys, member)
    wait = max(1, math.ceil(oldest + settings.SIGN_IN_FAILURE_WINDOW_S - _clock()))
    return Refusal(windows[full][2], wait)


def succeeded(attempt: Attempt) -> None:
    """The attempt signed in: it was no failure, so it gives its slots back."""
    try:
        pipe = _redis().pipeline()
        for key in attempt.keys:
            pipe.zrem(key, attempt.member)
        pipe.execute()
    except redis.RedisError:
        pass  # then the slots were taken in this process (_take): give them back there
    with _local_lock:
        for key in attempt.keys:
            _local.get(key, {}).pop(attempt.member, None)


def username_key(username: str) -> str:
    """One window per username however it is spelled (case, Unicode forms), hashed so that a
    long one makes no long key."""
    folded = unicodedata.normalize("NFKC", username.strip()).casefold()
    return f"{KEY_PREFIX}:user:{hashlib.sha256(folded.encode()).hexdigest()}"


def address_key(address: str) -> str:
    """One window per IPv4 address, and per /64 for IPv6: one host usually holds a whole /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{KEY_PREFIX}:addr:{address[:64]}"
    if ip.version == 6:
        return f"{KEY_PREFIX}:addr:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"{KEY_PREFIX}:addr:{ip}"


def _take(keys: tuple[str, ...], limits: list[int], member: str,
          now: float) -> tuple[int | None, float]:
    """(None, 0) with a slot taken in every window; else (index of a full window, time of its
    oldest failure), with nothing taken."""
    window = settings.SIGN_IN_FAILURE_WINDOW_S
    try:
        full, oldest = _redis().eval(_TAKE_SCRIPT, len(keys), *keys, now, window, member,
                                     *limits)
        return (None if full == 0 else full - 1), float(oldest)
    except redis.RedisError as exc:
        log.warning("failed sign-ins counted in this process: Redis did not answer (%s)", exc)
    return _take_locally(keys, limits, member, now, window)


def _take_locally(keys: tuple[str, ...], limits: list[int], member: str, now: float,
                  window: float) -> tuple[int | None, float]:
    with _local_lock:
        if len(_local) > _LOCAL_MAX_WINDOWS:  # many names tried: forget the ended windows
            for key in [k for k, taken in _local.items()
                        if all(at <= now - window for at in taken.values())]:
                del _local[key]
        slots = [_local.setdefault(key, {}) for key in keys]
        for index, (taken, limit) in enumerate(zip(slots, limits, strict=True)):
            for old in [m for m, at in taken.items() if at <= now - window]:
                del taken[old]
            if len(taken) >= limit:
                return index, min(taken.values())
        for taken in slots:
            taken[member] = now
        return None, 0.0


# One atomic step: forget what left each window, refuse if one is full (taking nothing), else
# take a slot in every window. KEYS: the windows; ARGV: now, window, member, then each limit.
_TAKE_SCRIPT = """
local now, window, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then
    return {i, redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]}
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, member)
  redis.call('EXPIRE', key, math.ceil(window) + 1)
end
return {0, '0'}
"""

_local: dict[str, dict[str, float]] = {}  # window -> {member: when taken}
_LOCAL_MAX_WINDOWS = 10_000
_local_lock = threading.Lock()
def _redis() -> redis.Redis:
    return redis_client(timeout_s=0.5)
