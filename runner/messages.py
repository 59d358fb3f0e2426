"""The contract between the server and the workers, defined once and validated on both sides.

A **StepJob** travels server -> worker over the compute target's Celery queue. **Step events**
travel worker -> server over HTTP, authorised by the job's per-attempt token. Both are plain JSON;
the JSON Schemas below are the single definition, and `parse_*` turns a violation into one
sentence naming the field.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

import jsonschema

CONTRACT_VERSION = 1
MAX_LOG_LINES_PER_EVENT = 1000
MAX_LOG_LINE_CHARS = 8192
MAX_METRIC_POINTS_PER_EVENT = 5000
MAX_EVENTS_PER_REPORT = 50


class MessageError(ValueError):
    """A message broke the contract; the text names the field."""


class ArtifactRef(TypedDict):
    digest: str  # "sha256:<hex>" of the file tree
    uri: str  # where the tree lives in the datastore (fsspec URL)
    size: int


class StepJob(TypedDict):
    version: int
    run_id: str
    step_run_id: int
    node: str
    attempt: int  # 1-based attempt number of this step run
    attempt_id: str  # unique per dispatch; the worker must claim it
    token: str  # valid for this attempt alone
    server_url: str
    component: str  # "name@version"
    command: list[str]  # entry command, e.g. ["{python}", "main.py"]; "{python}" = interpreter
    code: dict[str, Any]  # {"inline": {"main.py": "..."}} or {"snapshot": ArtifactRef}
    params: dict[str, Any]  # resolved parameter values
    inputs: dict[str, ArtifactRef]
    outputs: list[str]  # output port names the step must fill
    env: dict[str, str]  # extra environment variables declared on the node
    secrets: dict[str, str]  # declared secrets; values are masked in logs
    python: str | None  # interpreter to run the step with (a target's virtualenv), or None
    datastore_url: str  # where outputs are published
    timeout_s: int
    heartbeat_s: float
    # Without a successful report for this long the worker kills the step: shorter than the
    # server's lost-after threshold, so no retry ever overlaps a live old attempt (R4).
    lost_contact_s: float


_ARTIFACT_REF = {
    "type": "object",
    "required": ["digest", "uri", "size"],
    "properties": {
        "digest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
        "uri": {"type": "string", "minLength": 1},
        "size": {"type": "integer", "minimum": 0},
    },
}

STEP_JOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": list(StepJob.__annotations__),
    "properties": {
        "version": {"const": CONTRACT_VERSION},
        "run_id": {"type": "string", "minLength": 1},
        "step_run_id": {"type": "integer", "minimum": 1},
        "node": {"type": "string", "minLength": 1},
        "attempt": {"type": "integer", "minimum": 1},
        "attempt_id": {"type": "string", "minLength": 8},
        "token": {"type": "string", "minLength": 16},
        "server_url": {"type": "string", "pattern": "^https?://"},
        "component": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]*@[0-9]+$"},
        "command": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "code": {
            "type": "object",
            "oneOf": [
                {
                    "required": ["inline"],
                    "additionalProperties": False,
                    "properties": {
                        "inline": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
                {
                    "required": ["snapshot"],
                    "additionalProperties": False,
                    "properties": {"snapshot": _ARTIFACT_REF},
                },
            ],
        },
        "params": {"type": "object"},
        "inputs": {"type": "object", "additionalProperties": _ARTIFACT_REF},
        "outputs": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "env": {"type": "object", "additionalProperties": {"type": "string"}},
        "secrets": {"type": "object", "additionalProperties": {"type": "string"}},
        "python": {"type": ["string", "null"]},
        "datastore_url": {"type": "string", "minLength": 1},
        "timeout_s": {"type": "integer", "minimum": 1},
        "heartbeat_s": {"type": "number", "exclusiveMinimum": 0},
        "lost_contact_s": {"type": "number", "exclusiveMinimum": 0},
    },
}


# --- Step events ---------------------------------------------------------------------------
#
# A worker posts a *report*: {"attempt_id": ..., "events": [event, ...]} to
# POST /api/worker/steps/{step_run_id}/events/ with "Authorization: StepToken <token>".
# Every event carries `seq`, numbered from 1 per attempt by the worker, for the reader of a
# report; the server does not rely on it. A replayed event is applied once all the same: log
# lines and metric points carry their own running index (`first`) and are stored once under a
# unique constraint, and a replayed state event is a duplicate to `runner.transitions`.

EventType = Literal["started", "log", "metric", "heartbeat", "finished", "failed"]


class LogLine(TypedDict):
    stream: Literal["stdout", "stderr", "system"]
    text: str
    time: float  # unix seconds


class MetricPoint(TypedDict):
    key: str
    value: float
    step: int | None
    time: float


_EVENT_BASE = {"seq": {"type": "integer", "minimum": 1}, "time": {"type": "number"}}

# A final event may carry `hand_over`: the worker's slot is free, and the server may claim the
# next ready step of the run on the same target for it, with this claim, and answer with that
# step's StepJob as `next` (pipelines_ui/runs/engine/handover.py).
_HAND_OVER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["claim", "worker", "pid"],
    "properties": {
        "claim": {"type": "string", "minLength": 8},
        "worker": {"type": "string"},
        "pid": {"type": "integer"},
    },
}

_EVENT_SCHEMAS: dict[str, dict[str, Any]] = {
    "started": {
        # `claim` is random per Celery delivery: a retried POST of the same claim is idempotent,
        # while a second delivery of the same attempt (another claim) gets 409.
        "required": ["claim", "worker", "pid"],
        "properties": {
            "claim": {"type": "string", "minLength": 8},
            "worker": {"type": "string"},
            "pid": {"type": "integer"},
        },
    },
    "log": {
        "required": ["first", "lines"],
        "properties": {
            "first": {"type": "integer", "minimum": 1},
            "lines": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_LOG_LINES_PER_EVENT,
                "items": {
                    "type": "object",
                    "required": ["stream", "text", "time"],
                    "additionalProperties": False,
                    "properties": {
                        "stream": {"enum": ["stdout", "stderr", "system"]},
                        "text": {"type": "string", "maxLength": MAX_LOG_LINE_CHARS},
                        "time": {"type": "number"},
                    },
                },
            },
        },
    },
    "metric": {
        "required": ["first", "points"],
        "properties": {
            "first": {"type": "integer", "minimum": 1},
            "points": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_METRIC_POINTS_PER_EVENT,
                "items": {
                    "type": "object",
                    "required": ["key", "value", "step", "time"],
                    "additionalProperties": False,
                    "properties": {
                        "key": {"type": "string", "minLength": 1, "maxLength": 200},
                        "value": {"type": "number"},
                        "step": {"type": ["integer", "null"]},
                        "time": {"type": "number"},
                    },
                },
            },
        },
    },
    "heartbeat": {"required": [], "properties": {}},
    "finished": {
        "required": ["outputs", "exit_code"],
        "properties": {
            "outputs": {"type": "object", "additionalProperties": _ARTIFACT_REF},
            "exit_code": {"const": 0},
            "hand_over": _HAND_OVER,
        },
    },
    "failed": {
        "required": ["reason", "exit_code", "traceback"],
        "properties": {
            # Kinds of failure, so the server can tell a step's own error from a lost contact.
            "reason": {"enum": ["exit", "signal", "timeout", "canceled", "error", "lost_contact"]},
            "message": {"type": "string"},
            "exit_code": {"type": ["integer", "null"]},
            "traceback": {"type": "string"},
            "hand_over": _HAND_OVER,
        },
    },
}

STEP_REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["attempt_id", "events"],
    "properties": {
        "attempt_id": {"type": "string", "minLength": 8},
        "events": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_EVENTS_PER_REPORT,
            "items": {
                "type": "object",
                "required": ["type", "seq", "time"],
                "properties": {"type": {"enum": list(_EVENT_SCHEMAS)}},
                "allOf": [
                    {
                        "if": {"properties": {"type": {"const": name}}},
                        "then": {
                            "required": schema["required"],
                            "properties": {**_EVENT_BASE, **schema["properties"]},
                        },
                    }
                    for name, schema in _EVENT_SCHEMAS.items()
                ],
            },
        },
    },
}

# --- Worker announcements ----------------------------------------------------------------
# POST /api/worker/heartbeat/ with "Authorization: WorkerKey <key>" of the compute target.

WORKER_HEARTBEAT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["hostname", "target", "slots", "busy", "resources"],
    "properties": {
        "hostname": {"type": "string", "minLength": 1, "maxLength": 255},
        "target": {"type": "string", "minLength": 1},
        "slots": {"type": "integer", "minimum": 1},
        "busy": {"type": "integer", "minimum": 0},
        "resources": {"type": "object"},  # cpus, memory_bytes, gpus: [{name, memory_bytes}]
        "stopping": {"type": "boolean"},
    },
}


_validators: dict[int, jsonschema.Draft202012Validator] = {}


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    validator = _validators.get(id(schema))
    if validator is None:
        validator = _validators[id(schema)] = jsonschema.Draft202012Validator(schema)
    return validator


def _check(schema: dict[str, Any], data: Any, what: str) -> None:
    error = jsonschema.exceptions.best_match(_validator(schema).iter_errors(data))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        raise MessageError(f"{what} field {where}: {error.message}")


def parse_step_job(data: Any) -> StepJob:
    """Validate a StepJob received from the broker (or built by the server before sending)."""
    _check(STEP_JOB_SCHEMA, data, "StepJob")
    return data


def parse_step_report(data: Any) -> dict[str, Any]:
    """Validate a worker's report of step events."""
    if not _valid_with_items_apart(data):
        _check(STEP_REPORT_SCHEMA, data, "step report")  # names what is wrong
    return data


_STREAMS = frozenset(("stdout", "stderr", "system"))
_LINE_KEYS = frozenset(("stream", "text", "time"))
_POINT_KEYS = frozenset(("key", "value", "step", "time"))
_NUMBERS = frozenset((int, float))  # by type, so no bool


def _plain_line(line: Any) -> bool:
    return (type(line) is dict and line.keys() == _LINE_KEYS
            and type(line["stream"]) is str and line["stream"] in _STREAMS
            and type(line["text"]) is str and len(line["text"]) <= MAX_LOG_LINE_CHARS
            and type(line["time"]) in _NUMBERS)


def _plain_point(point: Any) -> bool:
    return (type(point) is dict and point.keys() == _POINT_KEYS
            and type(point["key"]) is str and 1 <= len(point["key"]) <= 200
            and type(point["value"]) in _NUMBERS
            and (point["step"] is None or type(point["step"]) is int)
            and type(point["time"]) in _NUMBERS)


_ITEMS = {"log": ("lines", _plain_line, MAX_LOG_LINES_PER_EVENT),
          "metric": ("points", _plain_point, MAX_METRIC_POINTS_PER_EVENT)}


def _valid_with_items_apart(data: Any) -> bool:
    """Whether a report is valid, its lines and points checked in plain Python (as strictly
    as the schema, or more) and the rest against the schema with one item of each list:
    jsonschema took about 40 us a point. False is no verdict: the caller checks it all."""
    if type(data) is not dict or type(data.get("events")) is not list:
        return False
    events = []
    for event in data["events"]:
        kind = event.get("type") if type(event) is dict else None
        items = _ITEMS.get(kind) if type(kind) is str else None
        if items is not None:
            name, plain, most = items
            values = event.get(name)
            if (type(values) is not list or not 1 <= len(values) <= most
                    or not all(map(plain, values))):
                return False
            event = {**event, name: values[:1]}
        events.append(event)
    return _validator(STEP_REPORT_SCHEMA).is_valid({**data, "events": events})


def parse_worker_heartbeat(data: Any) -> dict[str, Any]:
    """Validate a worker's announcement of itself."""
    _check(WORKER_HEARTBEAT_SCHEMA, data, "worker heartbeat")
    return data
