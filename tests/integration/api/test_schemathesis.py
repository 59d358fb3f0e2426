"""Schemathesis against /api/schema/: generated requests find no 500 and no schema violation.

In process (WSGI) with a workspace that holds one of each object, as its admin's token with
every scope. Bounded: a few examples per operation, so it stays a test, not a fuzzing campaign.
"""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from pipelines_ui.accounts.models import ApiToken
from pipelines_ui.pipelines import services
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.engine import submit_run
from tests.integration.api.conftest import ALL_SCOPES, two_steps

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MAX_EXAMPLES = 20


@pytest.fixture
def in_process(db):
    """Keep the test's connection open across requests, as Django's test client does."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def objects(in_process, workspace, owner, local_target):
    pipeline = Pipeline.objects.create(workspace=workspace, name="p", spec=two_steps())
    version = services.publish_version(pipeline)
    endpoint = services.create_endpoint(pipeline, name="score", version=version)
    services.create_schedule(endpoint, name="s", cron="0 * * * *")
    submit_run(pipeline, user=owner)


@pytest.fixture
def key(owner, workspace):
    return ApiToken.issue(workspace, owner, "schemathesis", ALL_SCOPES)[1]


# Loaded at collection (schemathesis's lazy from_fixture does not run on pytest 9): reading the
# schema touches no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@schema.exclude(path_regex="^/api/worker/").parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_the_api_honours_its_schema(case, objects, key):
    # Not positive_data_acceptance: a schema cannot say that an id must exist in one of the
    # caller's workspaces, so schema-valid requests naming unknown objects are rightly 400s.
    case.call_and_validate(headers={"Authorization": f"Token {key}"},
                           excluded_checks=[positive_data_acceptance])
