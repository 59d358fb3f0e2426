"""Fixtures for the API tests: clients signed in by session or token, and a small pipeline."""

import pytest
from rest_framework.test import APIClient

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.pipelines.models import Pipeline

ALL_SCOPES = ["read", "run", "publish", "endpoint:invoke"]


def script_node(node_id, code="print('hi')", *, target="local", inputs=(), outputs=(),
                **options):
    return {
        "id": node_id, "component": "python-script@1", "compute": target,
        "params": {"code": code, **options.pop("params", {})},
        "ports": {"inputs": [{"name": n, "type": "any"} for n in inputs],
                  "outputs": [{"name": n, "type": "any"} for n in outputs]},
        **options,
    }


def two_steps(target="local"):
    """prep -> train, with an int parameter `rows` that train reads."""
    return {
        "parameters": {"rows": {"type": "int", "default": 10}},
        "nodes": [script_node("prep", target=target, outputs=["data"]),
                  script_node("train", target=target, inputs=["data"],
                              params={"rows": "${rows}"})],
        "edges": [{"from": "prep.data", "to": "train.data"}],
    }


@pytest.fixture
def client_for():
    """An API client signed in as `user` by session (CSRF is enforced only when asked)."""
    def make(user, csrf: bool = False):
        client = APIClient(enforce_csrf_checks=csrf)
        client.force_login(user)
        return client
    return make


@pytest.fixture
def token_client():
    """An API client that sends `Authorization: Token <key>` of a new token."""
    def make(user, workspace, scopes=ALL_SCOPES, **options):
        _token, key = ApiToken.issue(workspace, user, "test", list(scopes), **options)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return client
    return make


@pytest.fixture
def pipeline(workspace, owner, local_target):
    return Pipeline.objects.create(workspace=workspace, name="two steps", spec=two_steps(),
                                   created_by=owner)
