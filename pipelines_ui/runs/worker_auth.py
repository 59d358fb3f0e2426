"""A worker's credential opens one door: its own step attempt's reports (docs/reliability.md S5).

The StepJob carries a token that is an HMAC of the server's key over (step run, attempt id)
(`engine.step_token`). Here, before a report is applied:

- a genuine token of one step attempt, posted for another step run: 403, it is not a bad
  credential but one used where it has no business;
- in `engine.ingest_report`: a token whose attempt succeeded is spent, so 401
  (`StepTokenExpired`), except for a replay of the final event itself (a worker whose reply
  was lost sends it again and is answered as a duplicate); an attempt the server ended (lost,
  canceled) answers 409, since a worker that still runs it must hear "stop" (R3).

And on every other API route, a step token or a worker key is refused with 403: it
authenticates no user and reads nothing.
"""

from __future__ import annotations

import hmac
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import PermissionDenied

from pipelines_ui.runs.engine import step_token
from pipelines_ui.runs.models import StepRun

WORKER_SCHEMES = (b"steptoken", b"workerkey")


class StepTokenForeign(Exception):
    """A real step token, sent for a step run it was not issued for (403)."""


def check_report_credential(step_run_id: int, token: str, body: Any) -> None:
    """Refuse (403) a genuine token of another step run. Costs nothing for a right token.

    Everything else (a malformed body, a token that is simply wrong, a spent token, a stale
    attempt) is left to `engine.ingest_report`, which answers it.
    """
    attempt_id = body.get("attempt_id") if isinstance(body, dict) else None
    if not isinstance(attempt_id, str) or not attempt_id:
        return
    if hmac.compare_digest(token, step_token(step_run_id, attempt_id)):
        return
    owner = (StepRun.objects.filter(attempt_id=attempt_id).exclude(pk=step_run_id)
             .values_list("pk", flat=True).first())
    if owner is not None and hmac.compare_digest(token, step_token(owner, attempt_id)):
        raise StepTokenForeign(f"this token belongs to step run {owner}; it cannot report for "
                               f"step run {step_run_id}")


class WorkerCredentialAuthentication(BaseAuthentication):
    """Last in the chain: a request that carries a worker's credential and nothing a user
    signs in with is refused with 403 (no user stands behind a step token)."""

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if parts and parts[0].lower() in WORKER_SCHEMES:
            raise PermissionDenied("A worker's credential (StepToken or WorkerKey) only reports "
                                   "to /api/worker/; it cannot use this route.")
        return None


class WorkerCredentialScheme(OpenApiAuthenticationExtension):
    """Not a way in, so the schema lists no security scheme for it."""

    target_class = WorkerCredentialAuthentication
    name: list[str] = []

    def get_security_requirement(self, auto_schema):
        return None

    def get_security_definition(self, auto_schema):
        return []
