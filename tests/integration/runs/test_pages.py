"""The run pages: history (filters, keyset pages, constant queries), the run page and its log
and artifact views, comparison, and the compute targets page. No worker is needed here: runs
and steps are written as the engine would leave them."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.urls import reverse

from pipelines_ui.accounts.models import Membership
from pipelines_ui.accounts.services import issue_token
from pipelines_ui.compute.models import Worker
from pipelines_ui.data.models import Artifact
from pipelines_ui.pipelines.models import Pipeline
from pipelines_ui.runs.models import LogLine, Run, RunTag, StepRun
from pipelines_ui.runs.queries import HistoryFilters, history_page, visible_runs
from runner.datastore import Datastore

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SPEC = {"parameters": {}, "edges": [{"from": "prep.out", "to": "train.data"}],
        "nodes": [{"id": "prep", "component": "python-script@1", "compute": "local"},
                  {"id": "train", "component": "python-script@1", "compute": "local"}]}


@pytest.fixture
def pipelines(workspace):
    return [Pipeline.objects.create(workspace=workspace, name=name, spec=SPEC)
            for name in ("churn-model", "forecast")]


def make_runs(workspace, pipelines, count, *, start=T0):
    """`count` runs a minute apart (the newest last), alternating pipeline and status."""
    statuses = ["succeeded", "failed", "running", "canceled"]
    runs = Run.objects.bulk_create([
        Run(workspace=workspace, pipeline=pipelines[i % len(pipelines)], spec=SPEC,
            parameters={"alpha": i}, status=statuses[i % 4],
            created_at=start + timedelta(minutes=i),
            started_at=start + timedelta(minutes=i, seconds=1),
            finished_at=None if statuses[i % 4] == "running"
            else start + timedelta(minutes=i, seconds=31),
            note="baseline" if i % 10 == 0 else "")
        for i in range(count)
    ])
    RunTag.objects.bulk_create([RunTag(run=r, name="nightly") for r in runs[::5]])
    return runs


def ids(response):
    return [r.pk for r in response.context["page"].runs]


def test_the_history_lists_the_workspace_runs_newest_first(client, owner, pipelines,
                                                          other_workspace):
    runs = make_runs(pipelines[0].workspace, pipelines, 5)
    foreign = Pipeline.objects.create(workspace=other_workspace, name="theirs", spec=SPEC)
    make_runs(other_workspace, [foreign], 3)
    client.force_login(owner)
    response = client.get(reverse("runs:history"))
    assert response.status_code == 200
    assert ids(response) == [r.pk for r in reversed(runs)]
    body = response.content.decode()
    assert "churn-model" in body and "theirs" not in body
    assert "30.0 s" in body  # the duration of a finished run


@pytest.mark.parametrize(("query", "expected"), [
    ({"status": "failed"}, lambda i: i % 4 == 1),
    ({"tag": "nightly"}, lambda i: i % 5 == 0),
    ({"q": "forecast"}, lambda i: i % 2 == 1),
    ({"q": "baseline"}, lambda i: i % 10 == 0),
    ({"q": "nightly", "status": "succeeded"}, lambda i: i % 5 == 0 and i % 4 == 0),
    ({"since": "2025-03-01", "until": "2025-03-01"}, lambda i: i < 720),
    ({"since": "2025-03-02"}, lambda i: i >= 720),
])
def test_the_history_filters(client, owner, pipelines, query, expected):
    runs = make_runs(pipelines[0].workspace, pipelines, 800)
    client.force_login(owner)
    wanted = [r.pk for i, r in reversed(list(enumerate(runs))) if expected(i)]
    found, url = [], reverse("runs:history") + "?" + "&".join(f"{k}={v}" for k, v in query.items())
    while url:  # walk every page
        response = client.get(url)
        found += ids(response)
        url = response.context["older_url"]
    assert found == wanted


def test_the_history_filters_by_pipeline_and_run_number(client, owner, pipelines):
    runs = make_runs(pipelines[0].workspace, pipelines, 10)
    client.force_login(owner)
    response = client.get(reverse("runs:history"), {"pipeline": pipelines[1].pk})
    assert ids(response) == [r.pk for r in reversed(runs[1::2])]
    response = client.get(reverse("runs:history"), {"q": f"#{runs[3].pk}"})
    assert runs[3].pk in ids(response)


def test_bad_filter_values_are_named_not_fatal(client, owner, pipelines):
    make_runs(pipelines[0].workspace, pipelines, 3)
    client.force_login(owner)
    response = client.get(reverse("runs:history"), {"since": "yesterday", "status": "weird"})
    assert response.status_code == 200
    assert len(ids(response)) == 3
    assert "since must be a date" in response.content.decode()


def test_keyset_pages_walk_forward_and_back_without_gaps_or_repeats(workspace, pipelines):
    runs = make_runs(workspace, pipelines, 23)
    # Two runs created in the same instant: the id breaks the tie.
    Run.objects.filter(pk=runs[10].pk).update(created_at=runs[11].created_at)
    filters = HistoryFilters()
    pages, after = [], ""
    while True:
        page = history_page(workspace, filters, after=after, size=5)
        pages.append(page)
        if not page.next_cursor:
            break
        after = page.next_cursor
    seen = [r.pk for p in pages for r in p.runs]
    assert sorted(seen, reverse=True) == sorted((r.pk for r in runs), reverse=True)
    assert len(seen) == len(set(seen)) == 23
    back = history_page(workspace, filters, before=pages[2].prev_cursor, size=5)
    assert [r.pk for r in back.runs] == [r.pk for r in pages[1].runs]


def test_a_history_page_costs_the_same_queries_deep_or_shallow(
        client, owner, pipelines, django_assert_max_num_queries):
    make_runs(pipelines[0].workspace, pipelines, 300)
    client.force_login(owner)
    with django_assert_max_num_queries(8):
        first = client.get(reverse("runs:history"), {"tag": "nightly", "q": "base"})
    url = reverse("runs:history")
    for _ in range(4):
        response = client.get(url)
        url = response.context["older_url"]
    with django_assert_max_num_queries(8):
        deep = client.get(url)
    assert len(ids(deep)) == 50 and ids(first)


# --- The run page ----------------------------------------------------------------------------


@pytest.fixture
def finished_run(workspace, pipelines, local_target, owner, settings, tmp_path):
    store = Datastore((tmp_path / "store").as_uri())
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "table.csv").write_text("x,y\n1,2\n3,4\n")
    (folder / "report.json").write_text('{"auc": 0.91}')
    (folder / "notes.txt").write_text("hello")
    (folder / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    (folder / "page.html").write_text("<script>alert(1)</script>")
    ref = store.publish(folder)
    run = Run.objects.create(workspace=workspace, pipeline=pipelines[0], spec=SPEC,
                             parameters={"alpha": 0.5}, status="failed", triggered_by=owner,
                             started_at=T0, finished_at=T0 + timedelta(seconds=5))
    prep = StepRun.objects.create(
        run=run, node="prep", component="python-script@1", compute_target=local_target,
        state="succeeded", attempt=1, worker="w1@host", exit_code=0, params={"rows": 3},
        outputs={"out": ref["digest"]}, fingerprint="sha256:" + "ab" * 32,
        reason="parameter rows changed from 2 to 3", started_at=T0,
        finished_at=T0 + timedelta(seconds=2))
    train = StepRun.objects.create(
        run=run, node="train", component="python-script@1", compute_target=local_target,
        state="failed", attempt=2, exit_code=1, error="ValueError: bad alpha",
        traceback="Traceback (most recent call last):\nValueError: bad alpha",
        inputs={"data": ref["digest"]}, started_at=T0 + timedelta(seconds=2),
        finished_at=T0 + timedelta(seconds=5))
    Artifact.objects.create(workspace=workspace, digest=ref["digest"], uri=ref["uri"],
                            size=ref["size"], produced_by=prep)
    LogLine.objects.bulk_create(
        [LogLine(step_run=train, attempt=a, index=i, stream="stdout", text=f"a{a} line {i}",
                 time=T0) for a in (1, 2) for i in range(1, 4)])
    return run


def test_the_run_page_hands_the_script_its_steps_and_artifacts(
        client, owner, finished_run, django_assert_max_num_queries):
    client.force_login(owner)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("runs:detail", args=[finished_run.pk]))
    assert response.status_code == 200
    data = response.context["data"]
    steps = data["run"]["steps"]
    assert [s["node"] for s in steps] == ["prep", "train"]
    assert data["graph"]["edges"] == [{"from": "prep", "to": "train"}]
    train = steps[1]
    assert (train["state"], train["exit_code"], train["attempt"]) == ("failed", 1, 2)
    assert "ValueError" in train["traceback"]
    assert data["run"]["trigger_label"] == "owner"
    # The script reads the run as the API gives it, so a refresh replaces it whole.
    assert json.loads(json.dumps(data["run"])) == client.get(data["urls"]["api"]).json()
    digest = steps[0]["outputs"]["out"]
    assert data["artifacts"][digest]["size"] > 0
    assert data["urls"]["socket"] == f"/ws/runs/{finished_run.pk}/"
    assert 'id="run-data"' in response.content.decode()


def test_outsiders_get_404_from_every_run_view(client, outsider, finished_run):
    client.force_login(outsider)
    digest = finished_run.steps.get(node="prep").outputs["out"]
    for url in (reverse("runs:detail", args=[finished_run.pk]),
                reverse("runs:log", args=[finished_run.pk, "train"]),
                reverse("runs:artifact", args=[finished_run.pk, digest]),
                reverse("runs:artifact_image", args=[finished_run.pk, digest])):
        assert client.get(url).status_code == 404, url


def test_a_user_sees_the_runs_of_each_workspace_and_a_token_those_of_its_own(
        owner, workspace, other_workspace, pipelines, outsider):
    Membership.objects.create(workspace=other_workspace, user=owner, role="viewer")
    theirs = Pipeline.objects.create(workspace=other_workspace, name="theirs", spec=SPEC)
    mine, other = (Run.objects.create(workspace=p.workspace, pipeline=p, spec=SPEC)
                   for p in (pipelines[0], theirs))
    token, _key = issue_token(workspace, owner, name="ci", scopes=["read"])
    assert set(visible_runs(owner)) == {mine, other}
    assert list(visible_runs(token)) == [mine]
    assert list(visible_runs(outsider)) == [other]
    assert list(visible_runs(AnonymousUser())) == []
    Membership.objects.filter(workspace=workspace, user=owner).delete()
    assert list(visible_runs(token)) == []  # a token reaches no further than its user


def test_anonymous_visitors_are_sent_to_sign_in(client, finished_run):
    response = client.get(reverse("runs:detail", args=[finished_run.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_full_log_downloads_every_attempt_in_order(client, owner, finished_run):
    client.force_login(owner)
    response = client.get(reverse("runs:log", args=[finished_run.pk, "train"]))
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    stamp = "2025-03-01T12:00:00.000+00:00 stdout"
    assert text.splitlines() == [
        "=== attempt 1 ===", *(f"{stamp} a1 line {i}" for i in (1, 2, 3)),
        "=== attempt 2 ===", *(f"{stamp} a2 line {i}" for i in (1, 2, 3))]


def test_artifacts_list_their_files_and_preview_text_csv_json_and_images(
        client, owner, finished_run):
    client.force_login(owner)
    digest = finished_run.steps.get(node="prep").outputs["out"]
    url = reverse("runs:artifact", args=[finished_run.pk, digest])
    files = client.get(url).json()["files"]
    assert {f["path"] for f in files} == {"table.csv", "report.json", "notes.txt", "plot.png",
                                          "page.html"}
    csv = client.get(url, {"path": "table.csv"}).json()
    assert (csv["kind"], csv["rows"]) == ("csv", [["x", "y"], ["1", "2"], ["3", "4"]])
    report = client.get(url, {"path": "report.json"}).json()
    assert report["kind"] == "json" and '"auc": 0.91' in report["text"]
    assert client.get(url, {"path": "notes.txt"}).json()["text"] == "hello"
    assert client.get(url, {"path": "plot.png"}).json()["kind"] == "image"
    image = client.get(reverse("runs:artifact_image", args=[finished_run.pk, digest]),
                       {"path": "plot.png"})
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    # HTML is shown as text, never served inline from our origin.
    html = reverse("runs:artifact_image", args=[finished_run.pk, digest])
    assert client.get(html, {"path": "page.html"}).status_code == 404
    assert client.get(url, {"path": "../../etc/passwd"}).status_code == 404


def test_an_artifact_the_run_did_not_touch_is_not_shown(client, owner, finished_run):
    client.force_login(owner)
    other = "sha256:" + "ef" * 32
    assert client.get(reverse("runs:artifact", args=[finished_run.pk, other])).status_code == 404


# --- Comparison --------------------------------------------------------------------------------


def test_the_comparison_marks_the_parameters_that_differ(client, owner, pipelines):
    workspace = pipelines[0].workspace
    one = Run.objects.create(workspace=workspace, pipeline=pipelines[0], spec=SPEC,
                             parameters={"alpha": 0.5, "epochs": 10})
    two = Run.objects.create(workspace=workspace, pipeline=pipelines[0], spec=SPEC,
                             parameters={"alpha": 0.7, "epochs": 10, "seed": 1})
    client.force_login(owner)
    response = client.get(reverse("runs:compare"), {"runs": [one.pk, two.pk]})
    rows = {r["name"]: r for r in response.context["comparison"].rows}
    assert rows["alpha"]["differs"] and rows["alpha"]["values"] == ["0.5", "0.7"]
    assert not rows["epochs"]["differs"]
    assert rows["seed"]["differs"] and rows["seed"]["values"] == ["—", "1"]
    body = response.content.decode()
    assert 'data-param="alpha" data-differs="1"' in body
    assert 'data-param="epochs" data-differs="0"' in body
    assert response.context["pipeline_id"] == pipelines[0].pk


def test_the_comparison_ignores_runs_of_other_workspaces(client, owner, pipelines,
                                                        other_workspace):
    foreign = Pipeline.objects.create(workspace=other_workspace, name="theirs", spec=SPEC)
    theirs = Run.objects.create(workspace=other_workspace, pipeline=foreign, spec=SPEC,
                                parameters={"secret": 1})
    client.force_login(owner)
    response = client.get(reverse("runs:compare"), {"runs": [theirs.pk]})
    assert response.context["comparison"].runs == []
    assert "secret" not in response.content.decode()


# --- Compute -------------------------------------------------------------------------------


def test_the_compute_page_shows_workers_slots_queue_and_running_steps(
        client, owner, pipelines, local_target, django_assert_max_num_queries):
    Worker.objects.create(target=local_target, hostname="w1@a", slots=2, busy=1)
    Worker.objects.create(target=local_target, hostname="w2@b", slots=4, busy=0,
                          last_seen_at=T0)  # long silent: lost
    run = Run.objects.create(workspace=local_target.workspace, pipeline=pipelines[0],
                             spec=SPEC, status="running")
    StepRun.objects.create(run=run, node="prep", component="c@1", compute_target=local_target,
                           state="running", worker="w1@a", started_at=T0)
    StepRun.objects.create(run=run, node="train", component="c@1",
                           compute_target=local_target, state="queued")
    client.force_login(owner)
    with django_assert_max_num_queries(10):
        status = client.get(reverse("compute:status")).json()
    (target,) = status["targets"]
    assert {w["hostname"]: w["state"] for w in target["workers"]} == {"w1@a": "online",
                                                                      "w2@b": "lost"}
    assert (target["online"], target["slots"], target["busy"], target["queued"]) == (1, 2, 1, 1)
    assert [(s["node"], s["worker"]) for s in target["running"]] == [("prep", "w1@a")]
    page = client.get(reverse("compute:targets"))
    assert page.status_code == 200 and b"compute-data" in page.content


def test_the_compute_page_shows_only_the_workspace_targets(client, outsider, local_target):
    client.force_login(outsider)
    assert client.get(reverse("compute:status")).json() == {"targets": []}
