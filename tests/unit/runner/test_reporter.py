"""The worker's reporter: ordered, batched, retried while the server is away, stopped on 409."""

import json
import socket
import threading
import time

import httpx
import pytest

from runner.messages import parse_step_report
from runner.reporter import StepReporter

JOB = {
    "step_run_id": 5, "attempt_id": "a" * 32, "token": "t" * 64,
    "server_url": "http://server.test", "heartbeat_s": 0.05,
    "lost_contact_s": 30.0,
}


class FakeServer:
    """An httpx transport that records every report and answers as told."""

    def __init__(self, answers=()):
        self.reports = []
        self.answers = list(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        parse_step_report(body)  # every report must keep the contract
        self.reports.append(body)
        assert request.headers["Authorization"] == f"StepToken {JOB['token']}"
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return httpx.Response(answer, json={"detail": "as told"})
        return httpx.Response(200, json={"ok": True, "cancel": False})

    def events(self, kind=None):
        seen = {}
        for report in self.reports:
            for event in report["events"]:
                seen[event["seq"]] = event  # replays carry the same seq
        return [e for _, e in sorted(seen.items()) if kind is None or e["type"] == kind]


def reporter(server, **kwargs):
    return StepReporter(JOB, client=httpx.Client(transport=httpx.MockTransport(server)),
                        **kwargs)


def test_lines_points_and_the_end_arrive_in_order_once_each():
    server = FakeServer()
    r = reporter(server)
    assert r.claim()
    for i in range(2500):
        r.log("stdout", f"line {i}", 1.0)
    r.metric("loss", 0.5, 1, 1.0)
    r.finish(None, {})
    lines = [line["text"] for e in server.events("log") for line in e["lines"]]
    assert lines == [f"line {i}" for i in range(2500)]
    firsts = [e["first"] for e in server.events("log")]
    assert firsts[0] == 1 and all(b > a for a, b in zip(firsts, firsts[1:], strict=False))
    assert server.events()[0]["type"] == "started"
    assert server.events()[-1]["type"] == "finished"
    assert [e["seq"] for e in server.events()] == list(range(1, len(server.events()) + 1))


def test_reports_are_retried_while_the_server_is_unreachable():
    server = FakeServer([httpx.ConnectError("refused"), 503, 502])
    r = reporter(server)
    assert r.claim()
    r.log("stdout", "kept", 1.0)
    r.finish({"reason": "exit", "message": "exit code 1", "exit_code": 1, "traceback": ""}, {})
    assert [line["text"] for e in server.events("log") for line in e["lines"]] == ["kept"]
    assert server.events()[-1]["type"] == "failed"


def test_a_second_delivery_is_not_claimed():
    server = FakeServer([409])
    assert reporter(server).claim() is False


def test_a_409_while_running_stops_the_step():
    server = FakeServer()
    r = reporter(server)
    assert r.claim()
    server.answers = [409]
    r.log("stdout", "x", 1.0)
    deadline = time.monotonic() + 5
    while r.should_stop() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert r.should_stop() == "lost_contact"
    r.finish(None, {})


def test_lost_contact_stops_the_step_before_the_server_gives_up_on_it():
    now = [0.0]
    server = FakeServer()
    r = reporter(server, lost_contact_after_s=5, clock=lambda: now[0])
    assert r.claim()
    assert r.should_stop() is None
    now[0] = 6.0
    assert r.should_stop() == "lost_contact"
    r.finish(None, {})


def test_the_lease_on_contact_runs_from_when_the_acknowledged_report_was_sent():
    now = [100.0]

    def slow_answer(request):  # the server takes 2 s to answer the claim
        now[0] += 2.0
        return httpx.Response(200, json={"ok": True, "cancel": False})

    r = reporter(slow_answer, lost_contact_after_s=5, clock=lambda: now[0])
    assert r.claim()
    assert r.contact_until() == 105.0  # sent at 100, answered at 102
    r.finish(None, {})


def test_a_delivery_of_a_finished_attempt_is_logged_as_expected_not_as_an_error(caplog):
    def finished(request):
        return httpx.Response(401, json={"detail": "this step attempt has finished; its token "
                                         "has expired", "finished": True})

    with caplog.at_level("INFO", logger="runner.reporter"):
        assert reporter(finished).claim() is False
    [record] = reporter_records(caplog)
    assert record.levelname == "INFO" and "has ended" in record.getMessage()


def test_a_bad_token_is_still_an_error(caplog):
    def refused(request):
        return httpx.Response(401, json={"detail": "the token is not valid"})

    with caplog.at_level("INFO", logger="runner.reporter"):
        assert reporter(refused).claim() is False
    assert [record.levelname for record in reporter_records(caplog)] == ["ERROR", "WARNING"]


def reporter_records(caplog):
    return [record for record in caplog.records if record.name == "runner.reporter"]


def test_a_cancel_in_a_reply_is_passed_to_the_executor():
    def cancel_after_claim(request):
        body = json.loads(request.content)
        canceling = body["events"][0]["type"] != "started"
        return httpx.Response(200, json={"ok": True, "cancel": canceling})

    r = StepReporter(JOB, client=httpx.Client(transport=httpx.MockTransport(cancel_after_claim)))
    assert r.claim()
    deadline = time.monotonic() + 5
    while r.should_stop() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # the next heartbeat carries the cancel back
    assert r.should_stop() == "canceled"
    r.finish(None, {})


@pytest.mark.parametrize("status", [400, 401])
def test_a_refused_claim_is_not_a_claim(status):
    assert reporter(FakeServer([status])).claim() is False


def test_a_server_that_never_answers_cannot_keep_the_final_flush_past_its_deadline():
    """R8: a hung flush target (it accepts the connection and says nothing) costs the worker
    at most the deadline plus one request's timeout, then the worker moves on."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(100)  # never accepted, never answered
    job = {**JOB, "server_url": f"http://127.0.0.1:{hung.getsockname()[1]}"}
    r = StepReporter(job, client=httpx.Client(timeout=0.5))
    r.log("stdout", "the last line", time.time())
    flush = threading.Thread(target=r.finish, args=(None, {}), kwargs={"deadline_s": 1.0},
                             daemon=True)
    started = time.monotonic()
    flush.start()
    flush.join(timeout=20)
    try:
        assert not flush.is_alive(), "the final flush hung"
        assert time.monotonic() - started < 1.0 + 0.5 + 5  # deadline, one timeout, slack
    finally:
        hung.close()
