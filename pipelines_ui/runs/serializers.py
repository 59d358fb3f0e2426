"""What a run and a step look like to every reader: the REST API, the run page's first draw
(its `json_script`) and the run page's live events. One shape each, so the page takes an API
response, its own data and a live event alike.

Each costs no query of its own when loaded as the API loads it: a run with RUN_JOINS and its
tags, its steps with STEPS (their target and its workers, for `waiting`; the step they reused).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Prefetch, prefetch_related_objects
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pipelines_ui.api_base import StrictModelSerializer
from pipelines_ui.runs.models import Run, RunTag, StepRun
from pipelines_ui.runs.waiting import waiting

RUN_JOINS = ("pipeline", "version", "triggered_by", "endpoint", "schedule")
STEPS = Prefetch("steps", queryset=StepRun.objects.select_related("compute_target", "reused_from")
                 .prefetch_related("compute_target__workers"))


def trigger_label(run: Run) -> str:
    """Who or what started the run, in a few words (RUN_JOINS must be loaded)."""
    if run.trigger == Run.Trigger.ENDPOINT:
        return f"endpoint {run.endpoint.name}" if run.endpoint else "endpoint"
    if run.trigger == Run.Trigger.SCHEDULE:
        return f"schedule {run.schedule.name}" if run.schedule else "schedule"
    who = run.triggered_by.get_username() if run.triggered_by else "a token" if run.token_id \
        else "someone"
    if run.trigger == Run.Trigger.RERUN:
        return f"rerun of #{run.rerun_of_id} by {who}" if run.rerun_of_id else f"rerun by {who}"
    return who


@extend_schema_field({"type": "string", "nullable": True})
class _FilledIn(serializers.Field):
    """A field StepRunSerializer.to_representation fills in; declared for the schema."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, value: Any) -> None:
        return None


class StepRunSerializer(serializers.ModelSerializer):
    compute_target = serializers.CharField(source="compute_target.name", allow_null=True,
                                           read_only=True)
    reused_from_run = serializers.IntegerField(source="reused_from.run_id", allow_null=True,
                                               read_only=True, help_text="The run whose step "
                                               "this one reused.")
    waiting = _FilledIn(
        help_text="What a queued step waits for and how long it has, such as \"waiting for a "
        "worker on gpu for 2 m 05 s\"; null when it waits on nothing it lacks.")
    waiting_kind = _FilledIn(
        help_text="What `waiting` is about, for a short label: \"worker\" (none online on the "
        "step's target) or \"lost_attempt\" (the lost attempt's processes may still run); null "
        "with `waiting`.")

    class Meta:
        model = StepRun
        fields = ["id", "node", "component", "compute_target", "state", "waiting",
                  "waiting_kind", "attempt", "attempts", "error", "traceback", "exit_code",
                  "reason", "fingerprint", "reused_from", "reused_from_run", "params", "inputs",
                  "outputs", "worker", "queued_at", "started_at", "finished_at"]
        read_only_fields = fields

    def to_representation(self, step: StepRun) -> dict[str, Any]:
        # waiting() is read once for both fields: read twice, a wait that ends in between
        # would give a sentence and a kind that disagree.
        kind, sentence = waiting(step, timezone.now()) or (None, None)
        return {**super().to_representation(step), "waiting": sentence, "waiting_kind": kind}


class TagsField(serializers.ListField):
    """A run's tags as a list of names (read from the prefetched rows)."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.CharField(max_length=64, allow_blank=False),
                         max_length=50, **kwargs)

    def get_attribute(self, instance: Run) -> list[str]:
        return sorted(tag.name for tag in instance.tags.all())


class RunSerializer(StrictModelSerializer):
    pipeline_name = serializers.CharField(source="pipeline.name", read_only=True)
    version = serializers.IntegerField(source="version.number", allow_null=True, read_only=True)
    triggered_by = serializers.CharField(source="triggered_by.username", allow_null=True,
                                         read_only=True)
    trigger_label = serializers.SerializerMethodField(
        help_text="Who or what started the run, in a few words, such as \"endpoint score\".")
    endpoint = serializers.CharField(source="endpoint.name", allow_null=True, read_only=True)
    tags = TagsField(required=False)

    class Meta:
        model = Run
        fields = ["id", "workspace", "pipeline", "pipeline_name", "version", "status",
                  "canceling", "trigger", "trigger_label", "triggered_by", "token", "endpoint",
                  "schedule", "rerun_of", "tags", "note", "created_at", "started_at",
                  "finished_at"]
        read_only_fields = [f for f in fields if f not in ("tags", "note")]

    def get_trigger_label(self, run: Run) -> str:
        return trigger_label(run)

    def update(self, run: Run, validated_data: dict[str, Any]) -> Run:
        with transaction.atomic():
            if "note" in validated_data:
                run.note = validated_data["note"]
                run.save(update_fields=["note"])
            if "tags" in validated_data:
                names = set(validated_data["tags"])
                run.tags.exclude(name__in=names).delete()
                RunTag.objects.bulk_create([RunTag(run=run, name=n) for n in names],
                                           ignore_conflicts=True)
        return run


class RunDetailSerializer(RunSerializer):
    steps = StepRunSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "parameters", "spec", "steps"]
        read_only_fields = [f for f in fields if f not in ("tags", "note")]


# One of each, shared: a serializer made per call costs some 0.7 ms, and the engine describes
# every step it changes (hundreds at once in a fan-out) while it holds the run's lock.
_STEP = StepRunSerializer()
_RUN = RunSerializer()


def step_data(step: StepRun) -> dict[str, Any]:
    """The step as the API shows it (load it with STEPS' joins to spare queries)."""
    return _STEP.to_representation(step)


def run_data(run: Run) -> dict[str, Any]:
    """The run as the API lists it; what of RUN_JOINS and its tags is not loaded yet is
    loaded here (so a run fresh from a lock costs a few queries)."""
    prefetch_related_objects([run], *RUN_JOINS, "tags")
    return _RUN.to_representation(run)
