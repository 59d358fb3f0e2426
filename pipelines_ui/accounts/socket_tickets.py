"""Socket tickets: how a client that cannot set headers on a WebSocket (a browser on another
origin, some libraries) opens a run's socket as the holder of an API token (docs/api.md,
WebSocket; docs/reliability.md S14).

`POST /api/socket-tickets/` gives a random ticket that the client passes once, within
TICKET_TTL_S, as `?ticket=` on the socket's URL. The ticket stands for the caller that asked
(the token, or the user and the session) and nothing more: the socket checks that caller's
scopes, expiry, revocation and membership as it would check the caller itself.

Tickets live in Redis (REDIS_URL, or the embedded Valkey): every server process sees them,
under their SHA-256 only, and expire by themselves. Redeeming reads and deletes a ticket in
one MULTI transaction, so of two sockets that present the same ticket only one gets it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import APIView

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.api_base import token_of
from pipelines_ui.redis_clients import redis_client

TICKET_TTL_S = 60.0
KEY_PREFIX = "socket-ticket"


@dataclass(frozen=True)
class TicketHolder:
    """Who asked for a ticket: a user, through a token or through a session."""

    user_id: int
    token_id: int | None
    session_key: str | None


class TicketsUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Socket tickets are unavailable: Redis does not answer. Try again."


def issue(holder: TicketHolder) -> tuple[str, datetime]:
    """A new ticket for `holder` and when it expires; only its hash is stored."""
    ticket = secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(seconds=TICKET_TTL_S)
    value = json.dumps({"user": holder.user_id, "token": holder.token_id,
                        "session": holder.session_key})
    try:
        _redis().set(_key(ticket), value, px=int(TICKET_TTL_S * 1000))
    except redis.RedisError as exc:
        raise TicketsUnavailable from exc
    return ticket, expires_at


def redeem(ticket: str) -> TicketHolder | None:
    """Who the ticket was issued to, the first time it is presented within its life; None
    for a used, expired or made-up ticket."""
    pipe = _redis().pipeline(transaction=True)
    pipe.get(_key(ticket))
    pipe.delete(_key(ticket))
    value, deleted = pipe.execute()
    if not deleted:
        return None
    found = json.loads(value)
    return TicketHolder(found["user"], found["token"], found["session"])


def _key(ticket: str) -> str:
    return f"{KEY_PREFIX}:{hashlib.sha256(ticket.encode()).hexdigest()}"


def _redis() -> redis.Redis:
    return redis_client(timeout_s=2)


# --- The API route ---------------------------------------------------------------------------


class SocketTicketSerializer(serializers.Serializer):
    ticket = serializers.CharField(help_text="Pass it once as ?ticket= on the socket's URL.")
    expires_at = serializers.DateTimeField(help_text="Unused after this, it is refused.")


class SocketTicketView(APIView):
    """A single-use ticket to open a run's WebSocket as this caller, for clients that cannot
    send `Authorization` on a socket. Any token with the `read` scope may ask."""

    def token_scopes(self, request) -> list[str]:
        return ["read"]  # a socket only reads

    @extend_schema(request=None, responses={201: SocketTicketSerializer},
                   operation_id="socket_tickets_create")
    def post(self, request):
        token: ApiToken | None = token_of(request)
        holder = TicketHolder(
            request.user.pk, token.pk if token else None,
            None if token else request.session.session_key)
        ticket, expires_at = issue(holder)
        return Response(SocketTicketSerializer({"ticket": ticket, "expires_at": expires_at}).data,
                        status=status.HTTP_201_CREATED)
