"""`python -m runner <command>`: the SDK from a terminal.

    pipelines                       list the workspace's pipelines
    runs [--pipeline P] [--status]  list recent runs
    submit SPEC.json --pipeline P   save the spec as P's draft and run it (--follow to wait)
    follow RUN                      print progress and logs until the run ends (live over
                                    the run's WebSocket; polling where it cannot open)
    publish P [--endpoint NAME]     freeze P's draft as a version (and point an endpoint at it)

The server and token come from --url/--token, PIPELINES_URL/PIPELINES_TOKEN or the config
file (runner/sdk/config.py). `follow` (and `submit --follow`) exit with the run's end:
0 succeeded, 1 failed, 3 canceled.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

from runner.sdk import (
    ApiError,
    ConfigError,
    Endpoint,
    Pipeline,
    PipelineError,
    PipelineInvalid,
    Run,
    SnapshotError,
    connect,
)
from runner.sdk.client import Client

EXIT_CODES = {"succeeded": 0, "failed": 1, "canceled": 3}
USAGE_ERROR = 2
SDK_COMMANDS = ("pipelines", "runs", "submit", "follow", "publish")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add the SDK's subcommands to `python -m runner`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="server URL (or PIPELINES_URL)")
    common.add_argument("--token", help="API token (or PIPELINES_TOKEN)")
    common.add_argument("--workspace", type=int, help="workspace id (or PIPELINES_WORKSPACE)")

    commands.add_parser("pipelines", parents=[common], help="list pipelines")
    runs = commands.add_parser("runs", parents=[common], help="list recent runs")
    runs.add_argument("--pipeline", help="only runs of this pipeline (name or id)")
    runs.add_argument("--status", help="only runs in this state")
    runs.add_argument("--limit", type=int, default=20)

    submit = commands.add_parser("submit", parents=[common], help="run a spec file")
    submit.add_argument("spec", help="a pipeline spec (JSON, as the editor exports it)")
    submit.add_argument("--pipeline", required=True, help="the pipeline's name")
    submit.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter value (JSON, else text); repeatable")
    submit.add_argument("--follow", action="store_true", help="wait for the end, with logs")

    follow = commands.add_parser("follow", parents=[common], help="follow a run to its end")
    follow.add_argument("run", type=int, help="the run id")
    follow.add_argument("--quiet", action="store_true", help="no progress or logs")
    follow.add_argument("--poll", type=float, default=1.0,
                        help="seconds between checks when polling (no WebSocket)")

    publish = commands.add_parser("publish", parents=[common], help="publish a version")
    publish.add_argument("pipeline", help="the pipeline's name or id")
    publish.add_argument("--message", default="", help="what changed")
    publish.add_argument("--endpoint", help="create this endpoint, or point it at the version")


def run_command(args: argparse.Namespace) -> int:
    """Run one SDK subcommand; its exit status. Errors are one line on stderr."""
    handler = HANDLERS[args.command]
    try:
        with connect(args.url, args.token, workspace=args.workspace) as client:
            return handler(client, args)
    except PipelineInvalid as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ApiError, ConfigError, PipelineError, SnapshotError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        for problem in getattr(exc, "errors", []):
            print(f"  {problem.get('field') or '-'}: {problem['message']}", file=sys.stderr)
        return USAGE_ERROR


def list_pipelines(client: Client, args: argparse.Namespace) -> int:
    rows = client.paginate("/api/pipelines/", workspace=client.workspace)
    _table(("ID", "NAME", "VERSION", "UPDATED"),
           ([p["id"], p["name"], p["latest_version"] or "-", p["updated_at"][:19]] for p in rows))
    return 0


def list_runs(client: Client, args: argparse.Namespace) -> int:
    pipeline = Pipeline.load(client, _name_or_id(args.pipeline)).id if args.pipeline else None
    page = client.get("/api/runs/", workspace=client.workspace, pipeline=pipeline,
                      status=args.status, limit=args.limit)
    _table(("ID", "PIPELINE", "STATUS", "TRIGGER", "CREATED"),
           ([r["id"], r["pipeline_name"], r["status"], r["trigger"], r["created_at"][:19]]
            for r in page["results"]))
    return 0


def submit(client: Client, args: argparse.Namespace) -> int:
    pipeline = Pipeline.from_file(client, args.spec, name=args.pipeline)
    run = pipeline.submit(_parameters(args.param))
    print(f"run {run.id} submitted: {run.url}", flush=True)
    if not args.follow:
        return 0
    return EXIT_CODES[run.wait().status]


def follow(client: Client, args: argparse.Namespace) -> int:
    run = Run.get(client, args.run).wait(show_output=not args.quiet, poll_s=args.poll)
    print(f"run {run.id} {run.status}", flush=True)
    return EXIT_CODES[run.status]


def publish(client: Client, args: argparse.Namespace) -> int:
    pipeline = Pipeline.load(client, _name_or_id(args.pipeline))
    number = pipeline.publish(args.message)
    print(f"published {pipeline.name} version {number}")
    if args.endpoint:
        endpoint = Endpoint.publish(client, args.endpoint, pipeline, version=number)
        print(f"endpoint {endpoint.name} runs version {endpoint.default_version}: "
              f"POST {endpoint.url}")
    return 0


HANDLERS: dict[str, Callable[[Client, argparse.Namespace], int]] = {
    "pipelines": list_pipelines, "runs": list_runs, "submit": submit, "follow": follow,
    "publish": publish,
}


def _parameters(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise PipelineError(f"--param {pair!r}: write it as NAME=VALUE")
        try:
            values[name] = json.loads(raw)
        except ValueError:
            values[name] = raw
    return values


def _name_or_id(text: str) -> str | int:
    return int(text) if text.isdigit() else text


def _table(header: tuple[str, ...], rows: Iterable[list[Any]]) -> None:
    lines = [list(header), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
              .rstrip())
