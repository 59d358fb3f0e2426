"""Read-only queries behind the run pages: history, one run, comparison.

Each page costs a constant number of queries whatever the number of runs or steps: history
pages are keyset-paginated on (created_at, id), which the run_ws_* indexes serve directly, so
page 2,000 costs what page 1 does.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet, prefetch_related_objects
from django.utils import timezone

from pipelines_ui.accounts.models import ApiToken, Workspace
from pipelines_ui.accounts.services import caller_workspaces
from pipelines_ui.data.models import Artifact
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.durations import format_duration
from pipelines_ui.runs.models import Run, RunTag, StepRun
from pipelines_ui.runs.serializers import RUN_JOINS, STEPS, RunDetailSerializer, trigger_label
from runner.transitions import RUN_STATES

PAGE_SIZE = 50
MAX_COMPARED = 8

# --- History ---------------------------------------------------------------------------------


@dataclass
class HistoryFilters:
    """What the history page's filter form asks for; blank means "any"."""

    pipeline: int | None = None
    status: str = ""
    tag: str = ""
    since: date | None = None
    until: date | None = None
    text: str = ""
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> HistoryFilters:
        """Parse the GET parameters; a bad value is dropped and named in `errors`."""
        found = cls(tag=query.get("tag", "").strip()[:64], text=query.get("q", "").strip()[:200])
        raw = query.get("pipeline", "")
        if raw:
            if raw.isdigit():
                found.pipeline = int(raw)
            else:
                found.errors.append("pipeline must be a pipeline's number")
        status = query.get("status", "")
        if status in RUN_STATES:
            found.status = status
        elif status:
            found.errors.append(f"unknown status {status!r}")
        for name in ("since", "until"):
            raw = query.get(name, "")
            if not raw:
                continue
            try:
                setattr(found, name, date.fromisoformat(raw))
            except ValueError:
                found.errors.append(f"{name} must be a date like 2025-01-31")
        return found

    def apply(self, runs: QuerySet[Run]) -> QuerySet[Run]:
        if self.pipeline:
            runs = runs.filter(pipeline_id=self.pipeline)
        if self.status:
            runs = runs.filter(status=self.status)
        if self.tag:
            runs = runs.filter(Exists(RunTag.objects.filter(run=OuterRef("pk"), name=self.tag)))
        if self.since:
            runs = runs.filter(created_at__gte=_day_start(self.since))
        if self.until:
            runs = runs.filter(created_at__lt=_day_start(self.until + timedelta(days=1)))
        if self.text:
            runs = runs.filter(_text_match(self.text))
        return runs

    def as_query(self) -> dict[str, str]:
        """The filters as GET parameters (for the pagination links)."""
        values = {"pipeline": self.pipeline or "", "status": self.status, "tag": self.tag,
                  "since": self.since.isoformat() if self.since else "",
                  "until": self.until.isoformat() if self.until else "", "q": self.text}
        return {k: str(v) for k, v in values.items() if v}


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _text_match(text: str) -> Q:
    """Free text: a run number, or part of the pipeline's name, a tag or the note."""
    match = (Q(pipeline__name__icontains=text) | Q(note__icontains=text)
             | Exists(RunTag.objects.filter(run=OuterRef("pk"), name__icontains=text)))
    digits = text.lstrip("#")
    if digits.isdigit():
        match |= Q(pk=int(digits))
    return match


@dataclass
class HistoryPage:
    runs: list[Run]
    next_cursor: str | None  # older runs follow
    prev_cursor: str | None  # newer runs precede


def encode_cursor(run: Run) -> str:
    raw = f"{run.created_at.timestamp():.6f}:{run.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, pk = raw.split(":")
        return datetime.fromtimestamp(float(stamp), tz=UTC), int(pk)
    except (ValueError, UnicodeDecodeError):
        return None


def history_page(workspace: Workspace | None, filters: HistoryFilters, *, after: str = "",
                 before: str = "", size: int = PAGE_SIZE) -> HistoryPage:
    """One page of the workspace's runs, newest first: two queries (runs, their tags).

    `after` pages to older runs, `before` to newer ones; both are cursors from a prior page.
    """
    if workspace is None:
        return HistoryPage([], None, None)
    runs = filters.apply(Run.objects.filter(workspace=workspace))
    runs = runs.select_related(*RUN_JOINS).prefetch_related("tags")
    newest_first = ("-created_at", "-id")
    position = decode_cursor(before or after) if (before or after) else None
    if position and before:
        moment, pk = position
        newer = runs.filter(created_at__gte=moment).filter(
            Q(created_at__gt=moment) | Q(pk__gt=pk)).order_by("created_at", "id")
        found = list(newer[:size + 1])
        more_newer = len(found) > size
        page = found[:size][::-1]
        return HistoryPage(
            _decorated(page), encode_cursor(page[-1]) if page else None,
            encode_cursor(page[0]) if page and more_newer else None)
    if position:
        moment, pk = position
        runs = runs.filter(created_at__lte=moment).filter(
            Q(created_at__lt=moment) | Q(pk__lt=pk))
    found = list(runs.order_by(*newest_first)[:size + 1])
    page = found[:size]
    return HistoryPage(
        _decorated(page), encode_cursor(page[-1]) if len(found) > size else None,
        encode_cursor(page[0]) if page and position else None)


def _decorated(runs: list[Run]) -> list[Run]:
    """Attach what the history table shows and the model does not hold."""
    for run in runs:
        run.duration_text = format_duration(run_duration(run))
        run.trigger_label = trigger_label(run)
        run.tag_names = sorted(tag.name for tag in run.tags.all())
    return runs


def run_duration(run: Run, now: datetime | None = None) -> timedelta | None:
    if run.started_at is None:
        return None
    return (run.finished_at or now or timezone.now()) - run.started_at


def pipelines_of(workspace: Workspace | None) -> list[dict[str, Any]]:
    if workspace is None:
        return []
    return list(Pipeline.objects.filter(workspace=workspace).order_by("name")
                .values("id", "name"))


# --- One run -------------------------------------------------------------------------------


def visible_runs(caller: Any) -> QuerySet[Run]:
    """The runs a user, or an API token, may see: those of the user's workspaces, or of the
    token's one workspace while its user is a member there. The API, the run pages and the run
    page's socket all ask this; each answers a run outside it as "no such run" (S8)."""
    if isinstance(caller, ApiToken):
        return Run.objects.filter(workspace__in=caller_workspaces(caller.user, caller))
    return Run.objects.filter(workspace__in=caller_workspaces(caller))


def run_page_data(run: Run) -> dict[str, Any]:
    """Everything the run page draws at load: the run as the API shows it, with its steps
    (four queries: tags, steps, their targets' workers, artifacts; RUN_JOINS are the caller's)."""
    prefetch_related_objects([run], "tags", STEPS)
    steps = run.steps.all()
    digests = {d for s in steps for d in (*s.inputs.values(), *s.outputs.values())}
    artifacts = {
        a.digest: {"digest": a.digest, "size": a.size, "produced_by_run": a.produced_by.run_id
                   if a.produced_by else None,
                   "produced_by_node": a.produced_by.node if a.produced_by else None}
        for a in Artifact.objects.filter(workspace=run.workspace_id, digest__in=digests)
        .select_related("produced_by")
    }
    spec = run.spec or {}
    return {
        "run": RunDetailSerializer(run).data,
        "graph": {
            "nodes": [{"id": n["id"], "component": n.get("component", ""),
                       "compute": n.get("compute", "")} for n in spec.get("nodes", [])],
            "edges": [{"from": e["from"].split(".")[0], "to": e["to"].split(".")[0]}
                      for e in spec.get("edges", [])],
        },
        "artifacts": artifacts,
    }


def run_artifact(run: Run, digest: str) -> Artifact | None:
    """An artifact the run's steps consumed or produced (only those are shown on its page)."""
    used = StepRun.objects.filter(run=run).values_list("inputs", "outputs")
    if not any(digest in {*ins.values(), *outs.values()} for ins, outs in used):
        return None
    return Artifact.objects.filter(workspace=run.workspace_id, digest=digest).first()


# --- Comparison ------------------------------------------------------------------------------


@dataclass
class Comparison:
    runs: list[Run]
    rows: list[dict[str, Any]]  # {name, values: [display per run], differs}


def compare_runs(workspace: Workspace | None, run_ids: list[int]) -> Comparison:
    """The runs side by side: each parameter once, with the runs' values and whether they differ.

    A parameter a run lacks shows as "—" and counts as a difference.
    """
    if workspace is None or not run_ids:
        return Comparison([], [])
    found = {r.pk: r for r in Run.objects.filter(workspace=workspace, pk__in=run_ids[:MAX_COMPARED])
             .select_related(*RUN_JOINS)}
    runs = [found[i] for i in run_ids if i in found]
    for run in runs:
        run.duration_text = format_duration(run_duration(run))
    names = sorted({name for run in runs for name in run.parameters})
    missing = object()
    rows = []
    for name in names:
        values = [run.parameters.get(name, missing) for run in runs]
        rows.append({
            "name": name,
            "values": ["—" if v is missing else _display(v) for v in values],
            "differs": len({_display(v) if v is not missing else None for v in values}) > 1,
        })
    return Comparison(runs, rows)


def _display(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else value


def recent_runs_of(workspace: Workspace | None, pipeline_id: int | None,
                   limit: int = 30) -> list[Run]:
    """The runs to pick from on the comparison page (one query)."""
    if workspace is None or not pipeline_id:
        return []
    return list(Run.objects.filter(workspace=workspace, pipeline_id=pipeline_id)
                .select_related("version").order_by("-created_at", "-id")[:limit])
