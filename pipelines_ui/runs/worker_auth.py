"""A worker's credential opens one door: its own step attempt's reports (docs/reliability.md S5).

The StepJob carries a token `<attempt id>.<HMAC of the server's key over (step run, attempt
id)>` (`engine.step_token`). Here, before the report's body is even read (S12: a caller without
a credential cannot make the server parse anything):

- a token the server did not issue for this step run: 401;
- a genuine token of one step attempt, posted for another step run: 403, it is not a bad
  credential but one used where it has no business;
- a worker key that belongs to no compute target: 401;
- in `engine.ingest_report`: a token whose attempt succeeded is spent, so 401
  (`StepTokenExpired`), except for a replay of the final event itself (a worker whose reply
  was lost sends it again and is answered as a duplicate); an attempt the server ended (lost,
  canceled) answers 409, since a worker that still runs it must hear "stop" (R3).

And on every other API route, a step token or a worker key is refused with 403: it
authenticates no user and reads nothing.
"""

from __future__ import annotations

import hmac

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import PermissionDenied

from pipelines_ui.accounts.models import hash_secret
from pipelines_ui.compute.models import ComputeTarget
from pipelines_ui.runs.engine import StepTokenInvalid, step_token
from pipelines_ui.runs.models import StepRun

WORKER_SCHEMES = (b"steptoken", b"workerkey")


class StepTokenForeign(Exception):
    """A real step token, sent for a step run it was not issued for (403)."""


def check_step_token(step_run_id: int, token: str) -> None:
    """StepTokenInvalid (401) unless the server issued `token` for an attempt of this step run;
    StepTokenForeign (403) for a genuine token of another step run. Reads no body: the token
    names its attempt. That the report is about this same attempt `engine.ingest_report`
    checks, once the body is read."""
    attempt_id = token.partition(".")[0]
    if attempt_id and hmac.compare_digest(token, step_token(step_run_id, attempt_id)):
        return
    owner = (StepRun.objects.filter(attempt_id=attempt_id).exclude(pk=step_run_id)
             .values_list("pk", flat=True).first()) if attempt_id else None
    if owner is not None and hmac.compare_digest(token, step_token(owner, attempt_id)):
        raise StepTokenForeign(f"this token belongs to step run {owner}; it cannot report for "
                               f"step run {step_run_id}")
    raise StepTokenInvalid("the token is not valid for this step attempt")


def worker_key_is_known(key: str) -> bool:
    """Whether `key` is the worker key of some compute target (which one, the heartbeat
    names; `target_for_worker_key` checks the pair once the body is read)."""
    return bool(key) and ComputeTarget.objects.filter(worker_key_hash=hash_secret(key)).exists()


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
