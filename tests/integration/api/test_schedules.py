"""Schedules: cron on an endpoint, kept in django-celery-beat; beat fires them (no sleeping).

"Driving beat's time": beat's own ModelEntry is built from the row our Schedule owns, its last
run is set a day back, and what it says is due is called exactly as beat would send it.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import ModelEntry

from pipelines_ui.celery import app
from pipelines_ui.pipelines import services
from pipelines_ui.pipelines.models import Schedule
from pipelines_ui.runs.models import Run
from pipelines_ui.runs.tasks import fire


@pytest.fixture(autouse=True)
def keep_the_test_connection(monkeypatch):
    """The task drops stale connections first (R7); here that would be the test's own."""
    monkeypatch.setattr("pipelines_ui.runs.tasks.close_old_connections", lambda: None)


@pytest.fixture
def endpoint(pipeline):
    return services.create_endpoint(pipeline, name="nightly",
                                    version=services.publish_version(pipeline))


def create(client, endpoint, **fields):
    body = {"endpoint": endpoint.pk, "name": "every morning", "cron": "30 6 * * 1-5",
            "parameters": {"rows": 5}, **fields}
    return client.post("/api/schedules/", body, format="json")


def beat_entry(schedule: Schedule, *, last_run_ago: timedelta) -> ModelEntry:
    row = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    row.last_run_at = timezone.now() - last_run_ago
    return ModelEntry(row, app=app)


def test_a_schedule_owns_a_beat_row_that_calls_fire_on_the_control_queue(client_for, owner,
                                                                        endpoint):
    response = create(client_for(owner), endpoint, time_zone="Europe/Paris")
    assert response.status_code == 201
    schedule = Schedule.objects.get(pk=response.json()["id"])
    row = schedule.periodic_task
    assert (row.task, row.queue, row.args, row.enabled) == (
        "pipelines_ui.pipelines.fire_schedule", "control", f"[{schedule.pk}]", True)
    assert (row.crontab.minute, row.crontab.hour, row.crontab.day_of_week,
            str(row.crontab.timezone)) == ("30", "6", "1-5", "Europe/Paris")
    assert response.json()["next_run_at"] is not None


def test_beat_fires_a_due_schedule_and_a_run_starts(client_for, owner, endpoint):
    schedule = Schedule.objects.get(pk=create(client_for(owner), endpoint,
                                              cron="* * * * *").json()["id"])
    entry = beat_entry(schedule, last_run_ago=timedelta(days=1))
    due, _next_check = entry.is_due()
    assert due
    assert entry.task == fire.name and entry.options["queue"] == "control"
    run_id = fire(*entry.args)
    run = Run.objects.get(pk=run_id)
    assert (run.trigger, run.schedule, run.endpoint) == ("schedule", schedule, endpoint)
    assert run.parameters == {"rows": 5} and run.triggered_by == owner


def test_a_paused_schedule_starts_nothing(client_for, owner, endpoint):
    client = client_for(owner)
    schedule_id = create(client, endpoint, cron="* * * * *").json()["id"]
    response = client.patch(f"/api/schedules/{schedule_id}/", {"enabled": False}, format="json")
    assert response.json()["next_run_at"] is None
    schedule = Schedule.objects.get(pk=schedule_id)
    assert not beat_entry(schedule, last_run_ago=timedelta(days=1)).is_due()[0]
    assert fire(schedule.pk) is None  # even if a message was already on its way
    assert not Run.objects.exists()


def test_disabling_the_endpoint_pauses_its_schedules(client_for, owner, endpoint):
    client = client_for(owner)
    schedule_id = create(client, endpoint).json()["id"]
    client.patch(f"/api/endpoints/{endpoint.name}/", {"enabled": False}, format="json")
    assert not PeriodicTask.objects.get(pipeline_schedule__pk=schedule_id).enabled
    assert fire(schedule_id) is None


def test_changing_the_cron_changes_the_beat_row(client_for, owner, endpoint):
    client = client_for(owner)
    schedule_id = create(client, endpoint).json()["id"]
    response = client.patch(f"/api/schedules/{schedule_id}/", {"cron": "0 0 1 * *"},
                            format="json")
    assert response.status_code == 200
    assert PeriodicTask.objects.get(pipeline_schedule__pk=schedule_id).crontab.day_of_month == "1"
    next_run = response.json()["next_run_at"]
    assert next_run.endswith("T00:00:00Z") and next_run[8:10] == "01"


@pytest.mark.parametrize(("cron", "field"), [("* * *", "cron"), ("61 * * * *", "cron"),
                                             ("* * * * funday", "cron")])
def test_a_bad_cron_is_a_400_naming_it(client_for, owner, endpoint, cron, field):
    response = create(client_for(owner), endpoint, cron=cron)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert not PeriodicTask.objects.filter(name__startswith="schedule-").exists()


def test_parameters_and_time_zone_are_checked(client_for, owner, endpoint):
    client = client_for(owner)
    response = create(client, endpoint, parameters={"rows": "lots"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "parameters.rows"
    response = create(client, endpoint, time_zone="Mars/Olympus")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "time_zone"


def test_deleting_a_schedule_removes_its_beat_row(client_for, owner, endpoint):
    client = client_for(owner)
    schedule_id = create(client, endpoint).json()["id"]
    assert client.delete(f"/api/schedules/{schedule_id}/").status_code == 204
    assert not PeriodicTask.objects.filter(name=f"schedule-{schedule_id}").exists()
    assert fire(schedule_id) is None


def test_a_viewer_cannot_schedule(client_for, viewer, endpoint):
    assert create(client_for(viewer), endpoint).status_code == 403
