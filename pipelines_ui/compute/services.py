"""Compute targets and the workers that announce themselves for them."""

from __future__ import annotations

import hmac
import secrets

from django.db import transaction
from django.utils import timezone

from pipelines_ui.accounts.models import hash_secret
from pipelines_ui.compute.models import ComputeTarget, Worker


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
