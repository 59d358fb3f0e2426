"""The HTTP side of the SDK: one authenticated httpx client, JSON errors as ApiError, paging;
and the run socket, opened with the same token."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import IO, Any

import httpx
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as connect_socket

from runner.sdk import config

DEFAULT_TIMEOUT_S = 60.0
SOCKET_OPEN_TIMEOUT_S = 10.0


class ApiError(Exception):
    """The server refused a request. `status`, `detail` and `errors` come from its JSON body:
    errors are {"node", "field", "message"}, as the editor shows them."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]] | None = None):
        self.status, self.detail, self.errors = status, detail, errors or []
        super().__init__(f"{status}: {detail}")


class Client:
    """A connection to one Pipelines server, as the holder of one API token."""

    def __init__(self, url: str, token: str, *, workspace: int | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S, transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self._workspace = workspace
        self._authorization = f"Token {token}"
        self.http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport,
                                 headers={"Authorization": self._authorization})

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- Requests ----------------------------------------------------------------------------

    def request(self, method: str, route: str, **options: Any) -> Any:
        """Send one request; the decoded JSON reply (None when empty), or ApiError."""
        response = self.http.request(method, route, **options)
        _raise_for_error(response)
        return response.json() if response.content else None

    def get(self, route: str, **params: Any) -> Any:
        return self.request("GET", route, params=_present(params))

    def post(self, route: str, body: Any = None, **params: Any) -> Any:
        return self.request("POST", route, json=body if body is not None else {},
                            params=_present(params))

    def patch(self, route: str, body: Any, **params: Any) -> Any:
        return self.request("PATCH", route, json=body, params=_present(params))

    def delete(self, route: str, **params: Any) -> None:
        self.request("DELETE", route, params=_present(params))

    def paginate(self, route: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, following `next` links."""
        page = self.get(route, **params)
        while True:
            yield from page["results"]
            if not page.get("next"):
                return
            page = self.request("GET", page["next"])

    def download(self, route: str, into: IO[bytes], **params: Any) -> httpx.Headers:
        """Stream a download into a binary file object; its response headers."""
        with self.http.stream("GET", route, params=_present(params)) as response:
            if response.is_error:
                response.read()
                _raise_for_error(response)
            for chunk in response.iter_bytes():
                into.write(chunk)
            return response.headers

    def open_socket(self, route: str) -> ClientConnection:
        """A WebSocket to the server (ws:// for http://, wss:// for https://), authenticated
        with the token. Raises OSError, TimeoutError or websockets' errors when it cannot
        open (the server refused it, or a proxy does not pass sockets)."""
        base = "ws" + self.url.removeprefix("http")
        return connect_socket(base + route, open_timeout=SOCKET_OPEN_TIMEOUT_S,
                              additional_headers={"Authorization": self._authorization},
                              max_size=None)

    # --- The workspace -----------------------------------------------------------------------

    @cached_property
    def workspace(self) -> int:
        """The id of the workspace objects are created in: the one chosen, or the only one."""
        if self._workspace is not None:
            return self._workspace
        found = list(self.paginate("/api/workspaces/"))
        if len(found) != 1:
            names = ", ".join(f"{w['id']} ({w['name']})" for w in found) or "none"
            raise config.ConfigError(f"choose a workspace: connect(workspace=ID) or "
                                     f"{config.WORKSPACE_VAR}; yours are {names}")
        return int(found[0]["id"])

    @property
    def chosen_workspace(self) -> int | None:
        """The workspace named at connect(), if any (routes by name need it only then)."""
        return self._workspace

    def editor_url(self, pipeline_id: int) -> str:
        """Where a pipeline opens in the browser editor."""
        return f"{self.url}/pipelines/{pipeline_id}/edit/"


def connect(url: str | None = None, token: str | None = None, *,
            workspace: int | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> Client:
    """A Client from arguments, else PIPELINES_URL / PIPELINES_TOKEN, else the config file."""
    found = config.resolve(url, token, workspace)
    return Client(found.url, found.token, workspace=found.workspace, timeout=timeout)


def _present(params: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


def _raise_for_error(response: httpx.Response) -> None:
    if not response.is_error:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail") or response.reason_phrase or "request failed"
    raise ApiError(response.status_code, str(detail), body.get("errors"))
