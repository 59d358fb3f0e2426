"""Who opens a run socket, decided before the consumer runs (docs/api.md, WebSocket).

A socket authenticates as the REST API does:

- **An API token** in `Authorization: Token ...`, or a ticket from `POST /api/socket-tickets/`
  in `?ticket=` for clients that cannot set headers. Either stands for the token (or the
  session) itself, which nothing on another site can read, so the Origin does not matter.
  A credential that is given but wrong, expired, revoked or used is refused (4401); it never
  falls back to the session cookie sent beside it. A token needs the `read` scope (4403).
- **Otherwise the session cookie**, which a browser sends to us from any page: the socket
  needs an `Origin` that Django's CSRF check would accept for a POST from that page (the
  server's own scheme, host and port, or CSRF_TRUSTED_ORIGINS). Browsers always send Origin
  on a WebSocket, so a cookie socket without one is refused (4403, docs/reliability.md S13).
"""

from __future__ import annotations

import io
from urllib.parse import parse_qs

import redis
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from django.contrib.auth import get_user_model
from django.core.handlers.asgi import ASGIRequest
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import path

from pipelines_ui.accounts import socket_tickets
from pipelines_ui.accounts.auth import token_from_header, token_still_valid
from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.accounts.services import TokenRejected
from pipelines_ui.runs import consumers

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_UNAVAILABLE = 1011  # Redis, where tickets live, does not answer

websocket_urlpatterns = [path("ws/runs/<int:run_id>/", consumers.RunConsumer.as_asgi())]


class _HandshakeRequest(ASGIRequest):
    """The socket's opening request as Django sees an HTTP one: ws is http, wss is https
    (unless SECURE_PROXY_SSL_HEADER says otherwise, as for any request)."""

    def __init__(self, scope: dict) -> None:
        super().__init__({**scope, "method": "GET"}, io.BytesIO())

    def _get_scheme(self) -> str:
        return "https" if self.scope.get("scheme") == "wss" else "http"


def origin_allowed(scope: dict) -> bool:
    """Whether Django's CSRF check would accept the socket's Origin: its own logic, so the
    socket and the HTTP API accept exactly the same origins."""
    request = _HandshakeRequest(scope)
    if "HTTP_ORIGIN" not in request.META:
        return False
    # A fresh instance: it caches CSRF_TRUSTED_ORIGINS, which tests change.
    return CsrfViewMiddleware(lambda _request: None)._origin_verified(request)


def _header(scope: dict, name: bytes) -> bytes | None:
    return next((value for key, value in scope.get("headers", []) if key.lower() == name),
                None)


def _ticket(scope: dict) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    return query.get("ticket", [None])[0]


@database_sync_to_async
def _caller_by_token(header: bytes) -> dict | None:
    try:
        token = token_from_header(header)
    except TokenRejected:
        return None
    return None if token is None else {"user": token.user, "token": token, "session_key": None}


@database_sync_to_async
def _caller_by_ticket(ticket: str) -> dict | None:
    holder = socket_tickets.redeem(ticket)
    if holder is None:
        return None
    if holder.token_id is not None:
        token = ApiToken.objects.select_related("user").filter(pk=holder.token_id).first()
        if token is None or not token_still_valid(token):
            return None
        return {"user": token.user, "token": token, "session_key": None}
    user = get_user_model().objects.filter(pk=holder.user_id, is_active=True).first()
    if user is None or not consumers.session_exists(holder.session_key):
        return None
    return {"user": user, "token": None, "session_key": holder.session_key}


async def _refuse(code: int, receive, send) -> None:
    """Close the socket before accepting it (a server answers the handshake with 403)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": code})


class SocketAuthentication:
    """The ASGI middleware in front of the run consumer (see the module docstring)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.by_session = AuthMiddlewareStack(inner)

    async def __call__(self, scope, receive, send):
        header, ticket = _header(scope, b"authorization"), _ticket(scope)
        if header is None and ticket is None:
            if not origin_allowed(scope):
                return await _refuse(CLOSE_FORBIDDEN, receive, send)
            return await self.by_session(scope, receive, send)
        try:
            caller = await (_caller_by_token(header) if header is not None
                            else _caller_by_ticket(ticket))
        except redis.RedisError:
            return await _refuse(CLOSE_UNAVAILABLE, receive, send)
        if caller is None:
            return await _refuse(CLOSE_UNAUTHENTICATED, receive, send)
        if caller["token"] is not None and not caller["token"].has_scope("read"):
            return await _refuse(CLOSE_FORBIDDEN, receive, send)
        return await self.inner({**scope, **caller}, receive, send)


websocket_application = SocketAuthentication(URLRouter(websocket_urlpatterns))
