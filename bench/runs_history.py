"""Benchmark: the run history page with 100,000 runs (prints server time and queries per page).

    python bench/runs_history.py                      # SQLite under bench/out/history-var
    python bench/runs_history.py --postgres postgres://postgres@127.0.0.1:5432/postgres

With --postgres it works in its own database (pipelines_bench_history, created on first use
and kept, so later runs skip the seeding). Each case renders the page in-process through
Django's test client (view, queries, template; no network) and reports the median of
--repeat requests and the number of queries, for the first page, pages deep in the history
(reached by keyset cursor) and each kind of filter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "pipelines_bench_history"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default="", help="a PostgreSQL server URL")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    return parser.parse_args()


def configure(args: argparse.Namespace) -> None:
    var = ROOT / "bench" / "out" / "history-var"
    var.mkdir(parents=True, exist_ok=True)
    os.environ.update({"PIPELINES_VAR_DIR": str(var),
                       "DJANGO_SETTINGS_MODULE": "pipelines_ui.settings",
                       "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost"})
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    if args.postgres:
        import psycopg

        with psycopg.connect(args.postgres, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 [DATABASE]).fetchone()
            if not found:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        base = args.postgres.rsplit("/", 1)[0]
        os.environ["DATABASE_URL"] = f"{base}/{DATABASE}"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def seed(count: int):
    """The workspace, a user and `count` runs over 5 pipelines (once; kept for later runs)."""
    from django.contrib.auth import get_user_model

    from pipelines_ui.accounts.models import Membership, Workspace
    from pipelines_ui.pipelines.models import Pipeline
    from pipelines_ui.runs.models import Run, RunTag

    workspace, _ = Workspace.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    user = get_user_model().objects.filter(username="bench").first()
    if user is None:
        user = get_user_model().objects.create_user("bench", password="bench-password-123")
        Membership.objects.create(workspace=workspace, user=user, role="admin")
    have = Run.objects.filter(workspace=workspace).count()
    if have >= count:
        return workspace, user
    spec = {"parameters": {}, "edges": [], "nodes": [
        {"id": "only", "component": "python-script@1", "compute": "local"}]}
    pipelines = [Pipeline.objects.get_or_create(workspace=workspace, name=f"pipeline-{i}",
                                                defaults={"spec": spec})[0] for i in range(5)]
    statuses = ["succeeded"] * 6 + ["failed", "canceled", "running", "queued"]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    began = time.perf_counter()
    for low in range(have, count, 5000):
        runs = Run.objects.bulk_create([
            Run(workspace=workspace, pipeline=pipelines[i % 5], spec=spec,
                status=statuses[i % len(statuses)], parameters={"alpha": i % 100},
                triggered_by=user, created_at=start + timedelta(minutes=i),
                started_at=start + timedelta(minutes=i, seconds=2),
                finished_at=start + timedelta(minutes=i, seconds=40 + i % 50),
                note=f"experiment {i}" if i % 100 == 0 else "")
            for i in range(low, min(low + 5000, count))])
        RunTag.objects.bulk_create([RunTag(run=r, name="gpu") for r in runs[::7]])
        print(f"  seeded {min(low + 5000, count):,} runs", end="\r", flush=True)
    print(f"  seeded {count - have:,} runs in {time.perf_counter() - began:.1f} s")
    return workspace, user


def measure(client, url: str, repeat: int) -> tuple[float, int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            began = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times), len(queries), len(response.context["page"].runs)


def main() -> None:
    args = parse_args()
    configure(args)
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from pipelines_ui.pipelines.models import Pipeline
    from pipelines_ui.runs.models import Run
    from pipelines_ui.runs.queries import encode_cursor

    call_command("migrate", verbosity=0)
    workspace, user = seed(args.runs)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # fresh statistics for the planner after seeding
    setup_test_environment()  # response.context for the run count
    client = Client()
    client.force_login(user)
    runs = Run.objects.filter(workspace=workspace).order_by("-created_at", "-id")
    total = runs.count()
    pipeline = Pipeline.objects.filter(workspace=workspace).order_by("name").first()

    def deep(offset: int) -> str:
        return f"/runs/?after={encode_cursor(runs[offset])}"

    cases = [
        ("first page", "/runs/"),
        ("page 20 (cursor)", deep(50 * 19 - 1)),
        ("page 1,000 (cursor)", deep(50 * 999 - 1)),
        ("last page (cursor)", deep(total - 21)),
        ("status=failed", "/runs/?status=failed"),
        (f"pipeline={pipeline.name}", f"/runs/?pipeline={pipeline.pk}"),
        ("tag=gpu", "/runs/?tag=gpu"),
        ("date range (1 day)", "/runs/?since=2024-02-01&until=2024-02-01"),
        ("text: pipeline name", "/runs/?q=pipeline-3"),
        ("text: rare note", "/runs/?q=experiment+99900"),
        ("all filters", f"/runs/?pipeline={pipeline.pk}&status=succeeded&tag=gpu"
                        "&since=2024-01-10&until=2024-03-01&q=pipeline"),
    ]
    print(f"\nrun history, {total:,} runs, {connection.vendor}; median of {args.repeat} "
          "requests, server time in-process")
    print(f"{'case':<28}{'ms':>9}{'queries':>9}{'rows':>6}")
    for name, url in cases:
        ms, queries, rows = measure(client, url, args.repeat)
        print(f"{name:<28}{ms:>9.1f}{queries:>9}{rows:>6}")


if __name__ == "__main__":
    main()
