"""Every route needs a signed-in user or a credential, unless it is listed here as public (S2).

The walk covers whatever the URLconf holds, pages and API alike, so a route added later without
authentication fails here even if nobody wrote a test for it.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

# Public on purpose: signing in, the health check, and the API's schema and docs (they hold
# no data, and integrators read them before they have a token).
PUBLIC = {"accounts:login", "healthz", "schema", "docs", "redoc", "admin:login"}
# Their own credentials (a step attempt's token, a compute target's worker key) guard these;
# tests/integration/runs/ covers them. Here: they answer no 2xx without one.
OWN_CREDENTIAL = {"worker-step-events", "worker-heartbeat"}
REFUSED = {401, 403, 302, 405}


def sample(pattern: str) -> str:
    """A concrete path for a route or regex pattern, with a sample value in each parameter."""
    path = re.sub(r"\(\?P<format>[^)]*\)", "json", pattern)
    path = re.sub(r"\(\?P<digest>[^)]*\)", "sha256:" + "0" * 64, path)
    path = re.sub(r"\(\?P<\w+>[^)]*\)", "1", path)
    path = re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: "1" if m.group(1) == "int" else "x", path)
    return "/" + path.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")


def routes(patterns=None, prefix="", namespace=""):
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from routes(entry.url_patterns, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}{entry.name}" if entry.name else ""
            yield name, sample(prefix + str(entry.pattern))


ALL = sorted(set(routes()))


def test_the_walk_finds_the_api_and_the_pages():
    paths = {path for _name, path in ALL}
    assert "/api/runs/1/" in paths and "/api/endpoints/1/runs/" in paths
    assert "/" in paths and "/api/schema/" in paths
    assert len(ALL) > 40


@pytest.mark.parametrize(("name", "path"), ALL, ids=[f"{n or '-'} {p}" for n, p in ALL])
def test_a_route_refuses_callers_without_credentials(db, name, path):
    client = APIClient()
    for method in ("get", "post", "patch", "delete"):
        response = getattr(client, method)(path, {}, format="json")
        if name in PUBLIC:
            assert response.status_code < 500, (method, path)
        elif name in OWN_CREDENTIAL:
            assert response.status_code >= 400, (method, path, response.status_code)
        else:
            assert response.status_code in REFUSED, (method, path, response.status_code)
            if path.startswith("/api/") and response.status_code == 401:
                assert response["WWW-Authenticate"].startswith("Token")


def test_api_refusals_are_401s_that_name_the_token_scheme(db):
    response = APIClient().post("/api/pipelines/1/runs/", {}, format="json")
    assert response.status_code == 401
    assert response.json()["detail"]
