"""API token authentication: `Authorization: Token pui_<prefix>_<secret>` (docs/reliability.md S4).

A request authenticated this way has `request.user` = the token's user and `request.auth` = the
ApiToken; the permission class (pipelines_ui.api_base) confines it to the token's workspace and
scopes. A missing token is no error here (session authentication may still apply); a wrong,
expired or revoked one is a 401 with `WWW-Authenticate`.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.accounts.services import TokenRejected, authenticate_token

KEYWORD = "Token"


def token_from_header(header: bytes) -> ApiToken | None:
    """The token an `Authorization` header value names; None when it names no token (another
    scheme, or none); TokenRejected when it is malformed, wrong, expired or revoked. The
    REST API and the run socket both read the header here."""
    parts = header.split()
    if not parts or parts[0].lower() != KEYWORD.lower().encode():
        return None
    if len(parts) != 2:
        raise TokenRejected("Malformed Authorization header; send "
                            "'Authorization: Token <key>'.")
    try:
        return authenticate_token(parts[1].decode("ascii"))
    except UnicodeDecodeError:
        raise TokenRejected("Invalid token.") from None


def token_still_valid(token: ApiToken) -> bool:
    """Whether a token authenticated earlier would still be accepted now (an open socket
    asks this every few seconds): neither revoked nor expired, and its user still active."""
    fresh = ApiToken.objects.select_related("user").filter(pk=token.pk).first()
    return fresh is not None and fresh.is_active and fresh.user.is_active


class TokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        try:
            token = token_from_header(get_authorization_header(request))
        except TokenRejected as exc:
            raise AuthenticationFailed(str(exc)) from None
        return None if token is None else (token.user, token)

    def authenticate_header(self, request) -> str:
        return f'{KEYWORD} realm="api"'


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = TokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "An API token: `Token pui_<prefix>_<secret>`."}
