"""Pipelines: the component palette, spec validation, drafts, versions, endpoints, schedules.

Each change to these objects happens in one function here, so the API, the pages and the SDK
agree: saving a draft (compare-and-set on its revision), freezing a version, publishing an
endpoint, and keeping each schedule's django-celery-beat row in step with it.
"""

from __future__ import annotations

import json
import zoneinfo
from datetime import datetime, timedelta
from typing import Any

import jsonschema
from celery.schedules import crontab
from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from pipelines_ui.accounts.models import Workspace
from pipelines_ui.compute.services import worker_warnings
from pipelines_ui.pipelines.models import (
    Component,
    Endpoint,
    Pipeline,
    PipelineVersion,
    Schedule,
    empty_spec,
)
from runner.components import BUILTINS, PORT_TYPES, ComponentDef
from runner.spec import (
    NAME,
    Spec,
    SpecError,
    SpecInvalid,
    check_run_parameters,
)
from runner.spec_validation import validate_spec


def component_registry(workspace: Workspace | int) -> dict[str, ComponentDef]:
    """Built-in components plus the workspace's registered ones, by "name@version"."""
    registry = dict(BUILTINS)
    for component in Component.objects.filter(workspace=workspace):
        registry[f"{component.name}@{component.version}"] = component.to_def()
    return registry


def check_spec(workspace: Workspace | int, document: Any,
               registry: dict[str, ComponentDef] | None = None) -> Spec:
    """The validated spec, or SpecInvalid naming every problem."""
    spec, errors = validate_spec(
        document, registry if registry is not None else component_registry(workspace),
        max_bytes=settings.PIPELINES_MAX_SPEC_BYTES,
    )
    if errors:
        raise SpecInvalid(errors)
    assert spec is not None
    return spec


def spec_errors(workspace: Workspace, document: Any) -> list[SpecError]:
    try:
        check_spec(workspace, document)
    except SpecInvalid as exc:
        return exc.errors
    return []


def spec_problems(workspace: Workspace, document: Any
                  ) -> tuple[list[SpecError], list[SpecError]]:
    """(errors, warnings): what stops a run, then what would stall it. Warnings are looked
    for in a valid spec only; an invalid one has more pressing problems."""
    try:
        spec = check_spec(workspace, document)
    except SpecInvalid as exc:
        return exc.errors, []
    return [], worker_warnings(workspace, spec)


# --- Drafts and versions --------------------------------------------------------------------

# A draft may be invalid (work in progress) but must still be a document worth storing.
MAX_DRAFT_NODES = 1000
MAX_DRAFT_EDGES = 5000


class StaleRevision(Exception):
    """The draft changed since the revision the caller edited (409)."""

    def __init__(self, sent: int, current: int) -> None:
        super().__init__(
            f"The draft was saved by someone else since revision {sent} (it is now at revision "
            f"{current}); reload it and apply your changes again.")
        self.current = current


def _draft_problem(document: Any) -> SpecError | None:
    if not isinstance(document, dict):
        return SpecError(None, "spec", "the spec must be a JSON object")
    size = len(json.dumps(document))
    if size > settings.PIPELINES_MAX_SPEC_BYTES:
        return SpecError(None, "spec", f"the spec is {size} bytes; the limit is "
                         f"{settings.PIPELINES_MAX_SPEC_BYTES} bytes")
    for key, limit in (("nodes", MAX_DRAFT_NODES), ("edges", MAX_DRAFT_EDGES)):
        items = document.get(key)
        if isinstance(items, list) and len(items) > limit:
            return SpecError(None, f"spec.{key}", f"the spec has {len(items)} {key}; the "
                             f"limit is {limit}")
    return None


def check_draft(document: Any) -> None:
    """SpecInvalid when a document cannot even be stored as a draft (not an object, too big)."""
    problem = _draft_problem(document)
    if problem is not None:
        raise SpecInvalid([problem], "The spec cannot be saved.")


def create_pipeline(workspace: Workspace, *, name: str, description: str = "",
                    spec: Any = None, user=None) -> Pipeline:
    """A new pipeline whose draft is `spec` (an empty one if None); SpecInvalid if the draft
    cannot be stored. The caller checks that the name is free: each answers a taken name in
    its own way (a form error, a 400, or keeping the pipeline that exists)."""
    spec = empty_spec() if spec is None else spec
    check_draft(spec)
    return Pipeline.objects.create(workspace=workspace, name=name, description=description,
                                   spec=spec, created_by=user, updated_by=user)


def save_draft(pipeline: Pipeline, *, spec: Any, revision: int, user=None) -> list[SpecError]:
    """Save the draft if nobody saved since `revision`; returns what is wrong with it.

    An invalid draft is saved (the editor keeps work in progress); runs and publishing need a
    valid one. Compare-and-set on the revision: of two saves from one revision, one wins.
    """
    check_draft(spec)
    saved = Pipeline.objects.filter(pk=pipeline.pk, revision=revision).update(
        spec=spec, revision=F("revision") + 1, updated_by=user, updated_at=timezone.now())
    pipeline.refresh_from_db()
    if not saved:
        raise StaleRevision(revision, pipeline.revision)
    return spec_errors(pipeline.workspace, spec)


def publish_version(pipeline: Pipeline, *, message: str = "", user=None) -> PipelineVersion:
    """Freeze the draft as the next version; SpecInvalid if the draft is not valid."""
    spec = check_spec(pipeline.workspace, pipeline.spec)
    with transaction.atomic():
        Pipeline.objects.select_for_update().filter(pk=pipeline.pk).first()
        latest = pipeline.versions.aggregate(n=Max("number"))["n"] or 0
        return PipelineVersion.objects.create(pipeline=pipeline, number=latest + 1,
                                              spec=spec.to_dict(), message=message,
                                              created_by=user)


def previous_version(version: PipelineVersion) -> PipelineVersion | None:
    return (PipelineVersion.objects.filter(pipeline=version.pipeline_id,
                                           number__lt=version.number)
            .order_by("-number").first())


def diff_specs(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """What changed between two specs: nodes, edges and parameters added, removed, changed.

    A node's position is layout, not behaviour, so moving a node is not a change.
    """
    old = old or {"parameters": {}, "nodes": [], "edges": []}

    def nodes(spec):
        return {n["id"]: {k: v for k, v in n.items() if k != "position"}
                for n in spec.get("nodes", [])}

    def edges(spec):
        return {(e["from"], e["to"]) for e in spec.get("edges", [])}

    def fields_changed(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
        return sorted(key for key in set(a) | set(b) if a.get(key) != b.get(key))

    before, after = nodes(old), nodes(new)
    changed = [{"node": node_id, "fields": fields_changed(before[node_id], after[node_id])}
               for node_id in after if node_id in before and before[node_id] != after[node_id]]
    old_params, new_params = old.get("parameters", {}), new.get("parameters", {})
    return {
        "nodes": {"added": [n for n in after if n not in before],
                  "removed": [n for n in before if n not in after],
                  "changed": changed},
        "edges": {"added": [{"from": f, "to": t} for f, t in sorted(edges(new) - edges(old))],
                  "removed": [{"from": f, "to": t} for f, t in sorted(edges(old) - edges(new))]},
        "parameters": {"added": [p for p in new_params if p not in old_params],
                       "removed": [p for p in old_params if p not in new_params],
                       "changed": [p for p in new_params
                                   if p in old_params and old_params[p] != new_params[p]]},
    }


def delete_pipeline(pipeline: Pipeline) -> None:
    """The pipeline with its versions, runs, endpoints and their schedules' beat rows."""
    with transaction.atomic():
        PeriodicTask.objects.filter(pipeline_schedule__endpoint__pipeline=pipeline).delete()
        pipeline.endpoints.all().delete()  # first: they protect the versions they publish
        pipeline.delete()


# --- Components --------------------------------------------------------------------------------


def component_problems(data: dict[str, Any]) -> dict[str, list[str]]:
    """What is wrong with a component to register, by field (empty when it is fine)."""
    problems: dict[str, list[str]] = {}
    if any(c.name == data.get("name") for c in BUILTINS.values()):
        problems["name"] = [f"{data['name']} is a built-in component; choose another name."]
    try:
        jsonschema.Draft202012Validator.check_schema(data.get("params_schema", {}))
    except jsonschema.SchemaError as exc:
        problems["params_schema"] = [f"not a valid JSON Schema: {exc.message}"]
    for kind in ("inputs", "outputs"):
        seen: set[str] = set()
        for i, port in enumerate(data.get(kind, [])):
            name, ptype = port.get("name"), port.get("type", "any")
            if not isinstance(name, str) or not NAME.fullmatch(name) or name in seen:
                problems.setdefault(kind, []).append(
                    f"[{i}].name: port names must be unique and start with a letter or _, "
                    "then letters, digits and _")
            elif ptype not in PORT_TYPES:
                problems.setdefault(kind, []).append(
                    f"[{i}].type: unknown port type {ptype!r}; the types are "
                    f"{', '.join(PORT_TYPES)}")
            seen.add(str(name))
    return problems


def register_component(workspace: Workspace, *, user=None, **fields: Any) -> Component:
    """The next version of a workspace's component (version 1 for a new name)."""
    with transaction.atomic():
        Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
        latest = Component.objects.filter(workspace=workspace, name=fields["name"]).aggregate(
            n=Max("version"))["n"] or 0
        return Component.objects.create(workspace=workspace, version=latest + 1,
                                        created_by=user, **fields)


# --- Endpoints ---------------------------------------------------------------------------------


def create_endpoint(pipeline: Pipeline, *, name: str, version: PipelineVersion,
                    description: str = "", enabled: bool = True) -> Endpoint:
    return Endpoint.objects.create(workspace=pipeline.workspace, pipeline=pipeline, name=name,
                                   description=description, default_version=version,
                                   enabled=enabled)


def update_endpoint(endpoint: Endpoint, **changes: Any) -> Endpoint:
    """Change an endpoint; a new `default_version` republishes it in one step."""
    with transaction.atomic():
        for key, value in changes.items():
            setattr(endpoint, key, value)
        endpoint.updated_at = timezone.now()
        endpoint.save()
        if "enabled" in changes:
            for schedule in endpoint.schedules.all():
                _sync_periodic_task(schedule)
    return endpoint


def delete_endpoint(endpoint: Endpoint) -> None:
    with transaction.atomic():
        PeriodicTask.objects.filter(pipeline_schedule__endpoint=endpoint).delete()
        endpoint.delete()


# --- Schedules ---------------------------------------------------------------------------------

CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
FIRE_SCHEDULE_TASK = "pipelines_ui.pipelines.fire_schedule"


def parse_cron(expression: str) -> dict[str, str]:
    """The five fields of a cron expression by name; ValueError naming the bad field."""
    parts = expression.split() if isinstance(expression, str) else []
    if len(parts) != 5:
        raise ValueError("a cron expression has five fields: minute hour day-of-month month "
                         "day-of-week, like '30 6 * * 1-5'")
    fields = dict(zip(CRON_FIELDS, parts, strict=True))
    for name, value in fields.items():
        try:
            crontab(**{name: value})
        except (ValueError, KeyError, IndexError) as exc:
            label = name.replace("_", " ").replace("of year", "").strip()
            raise ValueError(f"{label} {value!r} is not valid: {exc}") from None
    return fields


def check_time_zone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use a name like UTC or "
                         "Europe/Paris") from None
    return name


def check_schedule_parameters(endpoint: Endpoint, parameters: dict[str, Any]) -> None:
    """SpecInvalid naming each parameter that does not fit the endpoint's default version."""
    spec = check_spec(endpoint.workspace, endpoint.default_version.spec)
    _values, errors = check_run_parameters(spec, parameters)
    if errors:
        raise SpecInvalid(errors, "The schedule's parameters do not fit the endpoint's version.")


def create_schedule(endpoint: Endpoint, *, name: str, cron: str, time_zone: str = "UTC",
                    parameters: dict[str, Any] | None = None, enabled: bool = True,
                    user=None) -> Schedule:
    parse_cron(cron)
    check_schedule_parameters(endpoint, parameters or {})
    with transaction.atomic():
        schedule = Schedule.objects.create(
            workspace=endpoint.workspace, endpoint=endpoint, name=name, cron=cron,
            time_zone=time_zone, parameters=parameters or {}, enabled=enabled, created_by=user)
        _sync_periodic_task(schedule)
    return schedule


def update_schedule(schedule: Schedule, **changes: Any) -> Schedule:
    if "cron" in changes:
        parse_cron(changes["cron"])
    with transaction.atomic():
        for key, value in changes.items():
            setattr(schedule, key, value)
        check_schedule_parameters(schedule.endpoint, schedule.parameters)
        schedule.save()
        _sync_periodic_task(schedule)
    return schedule


def delete_schedule(schedule: Schedule) -> None:
    with transaction.atomic():
        task = schedule.periodic_task
        schedule.delete()
        if task is not None:
            task.delete()


def _sync_periodic_task(schedule: Schedule) -> None:
    """Create or update the beat row that fires `schedule` (in the caller's transaction)."""
    crontab_row, _ = CrontabSchedule.objects.get_or_create(
        timezone=schedule.time_zone, **parse_cron(schedule.cron))
    values = {
        "task": FIRE_SCHEDULE_TASK, "crontab": crontab_row, "interval": None,
        "args": json.dumps([schedule.pk]), "queue": "control",
        "enabled": schedule.enabled and schedule.endpoint.enabled,
        "description": f"Schedule {schedule.name} of endpoint {schedule.endpoint.name}",
    }
    task, _ = PeriodicTask.objects.update_or_create(name=f"schedule-{schedule.pk}",
                                                    defaults=values)
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        schedule.save(update_fields=["periodic_task"])


def next_run_at(schedule: Schedule, now: datetime | None = None) -> datetime | None:
    """When beat fires the schedule next; None while it (or its endpoint) is paused."""
    if not schedule.enabled or not schedule.endpoint.enabled:
        return None
    now = now or timezone.now()
    row = CrontabSchedule(timezone=schedule.time_zone, **parse_cron(schedule.cron))
    moment = now + row.schedule.remaining_estimate(now)
    return (moment + timedelta(seconds=30)).replace(second=0, microsecond=0)


def schedule_to_fire(schedule_id: int) -> Schedule | None:
    """The schedule beat fires now, with its endpoint; None when it is gone or paused, or its
    endpoint is disabled: a paused schedule starts nothing. (Runs start it: runs.engine.)"""
    schedule = Schedule.objects.select_related("endpoint__pipeline__workspace",
                                               "endpoint__default_version",
                                               "created_by").filter(pk=schedule_id).first()
    if schedule is None:
        # Its owner went (a workspace deleted in the admin): drop the orphaned beat row too.
        PeriodicTask.objects.filter(name=f"schedule-{schedule_id}").delete()
        return None
    if not schedule.enabled or not schedule.endpoint.enabled:
        return None
    return schedule
