"""Sending attempts to workers: each queued attempt's StepJob goes to its target's queue.

Jobs leave only after the transaction that queued their attempts commits (a worker must find
its attempt in the database). An attempt whose job did not reach the broker stays queued and
undispatched, and the reconciler sends it later (R5). Each job carries a token valid for its
attempt alone (`step_token`, docs/reliability.md S5).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pipelines_ui.data.models import Artifact
from pipelines_ui.data.services import datastore_url
from pipelines_ui.runs.engine.frozen_spec import frozen_spec
from pipelines_ui.runs.engine.locks import locked_run
from pipelines_ui.runs.models import StepRun
from pipelines_ui.secrets.services import declared_values
from runner.components import ComponentDef
from runner.messages import CONTRACT_VERSION, StepJob, parse_step_job

log = logging.getLogger(__name__)


def step_token(step_run_id: int, attempt_id: str) -> str:
    """The attempt's credential: `<attempt id>.<HMAC of the server's key>`, valid for that
    attempt alone. It names its attempt so that it is checked before a report is read (S12)."""
    message = f"step-attempt:{step_run_id}:{attempt_id}".encode()
    mac = hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()
    return f"{attempt_id}.{mac}"


def dispatch(step_run_id: int, attempt_id: str) -> bool:
    """Send the attempt's StepJob to its target's queue. False (and nothing recorded) when the
    attempt is no longer queued or the broker is unreachable: the reconciler sends it later."""
    step = (StepRun.objects.select_related("run", "compute_target").defer("run__spec")
            .filter(pk=step_run_id, attempt_id=attempt_id, state="queued").first())
    return step is not None and send_jobs([step]) == 1


def send_on_commit(steps: list[StepRun], artifacts: dict[str, Artifact] | None = None) -> None:
    """Send the jobs of the attempts just queued once the transaction that queued them commits
    (never before: a worker must find its attempt in the database)."""
    if steps:
        transaction.on_commit(partial(send_jobs, steps, artifacts))


def send_jobs(steps: list[StepRun], artifacts: dict[str, Artifact] | None = None) -> int:
    """Send the StepJobs of attempts just queued in one run, as the transaction that queued
    them left them; returns how many reached the broker. Should an attempt have ended
    meanwhile, its worker's claim is refused (R3). `artifacts` (digest -> Artifact) holds the
    inputs, where the caller has them already. Never raises: what was not sent stays queued
    and undispatched, and the reconciler sends it (R5)."""
    from pipelines_ui.celery import app

    try:
        workspace_id = steps[0].run.workspace_id
        if artifacts is None:
            artifacts = input_artifacts(workspace_id, (step.inputs for step in steps))
        store_url = datastore_url(workspace_id)
    except Exception:
        log.warning("could not build the jobs of step runs %s", [s.pk for s in steps],
                    exc_info=True)
        return 0
    sent = []
    for step in steps:
        try:
            job = build_job(step, artifacts, store_url)
        except Exception:
            log.warning("could not build the job of step run %s", step.pk, exc_info=True)
            continue
        try:
            app.send_task("runner.run_step", args=[job], queue=step.compute_target.queue,
                          retry=True, retry_policy={"max_retries": 2, "interval_start": 0.2,
                                                    "interval_step": 0.5, "interval_max": 1})
        except Exception:  # the broker is down: the rest would wait for it in vain
            log.warning("could not send step run %s to the broker", step.pk, exc_info=True)
            break
        sent.append(step.attempt_id)
    if sent:
        _mark_dispatched(steps[0].run_id, sent)
    return len(sent)


def _mark_dispatched(run_id: int, attempt_ids: list[str]) -> None:
    """Record that the attempts' jobs reached the broker. Several rows are updated under the
    run's lock, as every change of a run's steps is (R10): an event of the run locks them all
    meanwhile, in its own order. One row alone cannot deadlock."""
    rows = StepRun.objects.filter(attempt_id__in=attempt_ids, dispatched_at__isnull=True)
    try:
        if len(attempt_ids) == 1:
            rows.update(dispatched_at=timezone.now())
            return
        with transaction.atomic():
            locked_run(run_id)
            rows.update(dispatched_at=timezone.now())
    except Exception:  # the jobs left: a second send of one is refused at its claim (R3)
        log.warning("could not record the dispatch of %s jobs of run %s", len(attempt_ids),
                    run_id, exc_info=True)


def build_job(step: StepRun, artifacts: dict[str, Artifact] | None = None,
              store_url: str | None = None) -> StepJob:
    run = step.run
    frozen = frozen_spec(run)
    node = frozen.spec.node(step.node)
    component = frozen.components[node.component]
    params = dict(step.params)
    code = _job_code(component, params, run.workspace_id)
    if artifacts is None:
        artifacts = input_artifacts(run.workspace_id, [step.inputs])
    job: StepJob = {
        "version": CONTRACT_VERSION,
        "run_id": str(run.pk),
        "step_run_id": step.pk,
        "node": step.node,
        "attempt": step.attempt,
        "attempt_id": step.attempt_id,
        "token": step_token(step.pk, step.attempt_id),
        "server_url": settings.PIPELINES_SERVER_URL,
        "component": node.component,
        "command": list(component.command),
        "code": code,
        "params": params,
        "inputs": {port: {"digest": digest, "uri": artifacts[digest].uri,
                          "size": artifacts[digest].size}
                   for port, digest in step.inputs.items() if digest in artifacts},
        "outputs": [port.name for port in node.outputs],
        "env": dict(node.env),
        "secrets": declared_values(run.workspace_id, node.secrets),
        "python": step.compute_target.python or None,
        "datastore_url": datastore_url(run.workspace_id) if store_url is None else store_url,
        "timeout_s": node.timeout_s,
        "heartbeat_s": settings.STEP_HEARTBEAT_S,
        "lost_contact_s": lost_contact_s(),
    }
    return parse_step_job(job)


def lost_contact_s() -> float:
    """How long a worker may go without reaching the server before it kills its step: well
    inside the server's lost-after threshold, and at least two heartbeats."""
    return max(settings.STEP_HEARTBEAT_S * 2, settings.STEP_LOST_AFTER_S * 0.6)


def _job_code(component: ComponentDef, params: dict[str, Any],
              workspace_id: int) -> dict[str, Any]:
    """Inline code travels in the job; a source snapshot travels by reference (it was checked
    to be in the run's workspace at submit, and artifacts are never deleted under a run)."""
    if "code" in params:
        return {"inline": {params.get("script", "main.py"): params.pop("code")}}
    digest = snapshot_digest(params)
    if digest is not None:
        artifact = Artifact.objects.get(workspace=workspace_id, digest=digest)
        return {"snapshot": {"digest": artifact.digest, "uri": artifact.uri,
                             "size": artifact.size}}
    return {"inline": dict(component.files)}


def snapshot_digest(params: dict[str, Any]) -> str | None:
    """The source snapshot a step's code comes from, when it is not inline."""
    source = params.get("source")
    return source if "code" not in params and isinstance(source, str) else None


def input_artifacts(workspace_id: int, inputs: Iterable[dict[str, str]]
                    ) -> dict[str, Artifact]:
    """digest -> Artifact of the workspace, for every digest the `inputs` name."""
    digests = {digest for ports in inputs for digest in ports.values()}
    if not digests:
        return {}
    return {a.digest: a for a in Artifact.objects.filter(workspace=workspace_id,
                                                         digest__in=digests)}
