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

from pipelines_ui.accounts.services import TokenRejected, authenticate_token

KEYWORD = "Token"


class TokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Malformed Authorization header; send "
                                       "'Authorization: Token <key>'.")
        try:
            token = authenticate_token(parts[1].decode("ascii"))
        except (UnicodeDecodeError, TokenRejected) as exc:
            message = str(exc) if isinstance(exc, TokenRejected) else "Invalid token."
            raise AuthenticationFailed(message) from None
        return token.user, token

    def authenticate_header(self, request) -> str:
        return f'{KEYWORD} realm="api"'


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = TokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "An API token: `Token pui_<prefix>_<secret>`."}
