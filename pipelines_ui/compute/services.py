"""Compute targets and the workers that announce themselves for them."""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from pipelines_ui.accounts.models import Workspace, hash_secret
from pipelines_ui.compute.models import ComputeTarget, Worker
from runner.spec import Spec, SpecError


def issue_worker_key(target: ComputeTarget) -> str:
    """A new key for the target's workers (the old one stops working); returns it once."""
    key = f"pwk_{target.name}_{secrets.token_urlsafe(32)}"
    target.worker_key_hash = hash_secret(key)
    target.save(update_fields=["worker_key_hash"])
    return key


def target_for_worker_key(target_name: str, key: str) -> ComputeTarget | None:
    target = ComputeTarget.objects.filter(name=target_name).first()
    if target is None or not target.worker_key_hash:
        return None
    if not hmac.compare_digest(target.worker_key_hash, hash_secret(key)):
        return None
    return target


def record_worker_heartbeat(target: ComputeTarget, beat: dict) -> Worker:
    """Create or refresh the worker row from its announcement (runner.messages schema)."""
    now = timezone.now()
    with transaction.atomic():
        worker, created = Worker.objects.get_or_create(
            target=target,
            hostname=beat["hostname"],
            defaults={"started_at": now},
        )
        if worker.stopped and not beat.get("stopping"):
            worker.started_at = now  # a restarted worker under the same name
        worker.slots = beat["slots"]
        worker.busy = beat["busy"]
        worker.resources = beat["resources"]
        worker.last_seen_at = now
        worker.stopped = bool(beat.get("stopping"))
        worker.save()
    return worker


def worker_warnings(workspace: Workspace | int, spec: Spec,
                    now: datetime | None = None) -> list[SpecError]:
    """One warning per step whose compute target has no worker online: it would sit queued
    until one starts. Not an error, since a worker may start before the step is due."""
    online = _targets_online(workspace, {node.compute for node in spec.nodes},
                             now or timezone.now())
    warnings = []
    for node in spec.nodes:
        if node.compute not in online:
            message = f"compute target {node.compute!r} is not in this workspace"
        elif not online[node.compute]:
            message = (f"no worker is online for compute target {node.compute!r}: step "
                       f"{node.id} will wait until one starts (python -m runner worker "
                       f"--target {node.compute})")
        else:
            continue
        warnings.append(SpecError(node.id, "compute", message))
    return warnings


def _targets_online(workspace: Workspace | int, names: set[str],
                    now: datetime) -> dict[str, bool]:
    """name -> whether a worker of that target is online, for those of `names` in the
    workspace (one query)."""
    since = now - timedelta(seconds=settings.WORKER_LOST_AFTER_S)
    online = Worker.objects.filter(target=OuterRef("pk"), stopped=False, last_seen_at__gt=since)
    return dict(ComputeTarget.objects.filter(workspace=workspace, name__in=names)
                .annotate(online=Exists(online)).values_list("name", "online"))
