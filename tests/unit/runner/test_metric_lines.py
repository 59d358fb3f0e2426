"""The worker's side of metrics: the executor reads the metrics pipe a read at a time, hands
a line that is already a point as the server takes it on as its own text, and the reporter
sends those texts as they are, in order, once each."""

from __future__ import annotations

import json
import time
from unittest.mock import patch

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.executor import streams
from runner.messages import parse_step_report
from runner.reporter import MAX_REPORT_BYTES, StepReporter
from tests.support import wait_until

JOB = {"step_run_id": 5, "attempt_id": "a" * 32, "token": "t" * 64,
       "server_url": "http://server.test", "heartbeat_s": 60.0, "lost_contact_s": 30.0}
AS_WRITTEN = '{"key": "loss", "value": 0.5, "step": 3, "time": 1700000000.25}'


@settings(max_examples=500)
@given(data=st.lists(st.sampled_from([b"ab", b"\n", b"\r", "é".encode(), b"\xff", b"{}"]),
                    max_size=40).map(b"".join),
       cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=10))
def test_metric_lines_are_the_lines_any_stream_would_have(data: bytes, cuts: list[int]) -> None:
    by_line: list[str] = []
    by_read: list[list[str]] = []
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    with patch.object(streams, "_READ_LIMIT", 4):  # so that some lines are too long
        for lines in (streams.Lines(by_line.append), streams.MetricLines(by_read.append)):
            for start, stop in zip(bounds, bounds[1:], strict=False):
                lines.feed(data[start:stop])
            lines.end()
    assert [line for read in by_read for line in read] == by_line
    assert all(by_read)  # no empty hand-overs


class JsonSink:
    """A sink that takes points as JSON text, as the reporter does."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.points: list[tuple[str, float, int | None]] = []
        self.lines: list[str] = []

    def log(self, stream: str, text: str, time: float) -> None:
        self.lines.append(text)

    def metric(self, key: str, value: float, step: int | None, time: float) -> None:
        self.points.append((key, value, step))

    def metric_json(self, text: str) -> None:
        self.texts.append(text)


def test_a_line_as_the_step_writes_it_is_handed_on_as_it_is() -> None:
    sink = JsonSink()
    streams.StreamSink(sink, streams.Masker([])).metric_lines([AS_WRITTEN])
    assert sink.texts == [AS_WRITTEN] and sink.points == []


def test_other_good_lines_and_lines_with_a_secret_are_handed_on_parsed_and_masked() -> None:
    sink = JsonSink()
    lines = [
        '{"key": "loss", "value": 1, "step": 3}',  # no time: the executor's clock
        '{"key": "loss", "value": 1, "step": 3, "time": 1.0, "more": 1}',
        '{"key": "lösung", "value": 1, "step": 3, "time": 1.0}',
        '{"key": "loss-s3cret", "value": 1, "step": 3, "time": 1.0}',
        '{"key": "loss-s3cr\\u0065t", "value": 1, "step": 3, "time": 1.0}',
        '{"key": "s3cret", "key": "loss", "value": 1, "step": 3, "time": 1.0}',
        'not json',
    ]
    streams.StreamSink(sink, streams.Masker(["s3cret"])).metric_lines(lines)
    assert sink.texts == []
    assert sink.points == [("loss", 1.0, 3), ("loss", 1.0, 3), ("lösung", 1.0, 3),
                           ("loss-***", 1.0, 3), ("loss-***", 1.0, 3), ("loss", 1.0, 3)]
    assert sink.lines == ["ignored a malformed metric line: not json"]


def test_a_sink_without_metric_json_gets_every_point_parsed() -> None:
    points = []

    class Plain:
        def log(self, *args) -> None: ...

        def metric(self, key: str, value: float, step: int | None, time: float) -> None:
            points.append((key, value, step, time))

    streams.StreamSink(Plain(), streams.Masker([])).metric_lines([AS_WRITTEN])
    assert points == [("loss", 0.5, 3, 1700000000.25)]


def test_the_reporter_sends_texts_and_points_in_order_once_each_in_reports_of_its_size() -> None:
    reports = []

    def server(request: httpx.Request) -> httpx.Response:
        assert len(request.content) <= MAX_REPORT_BYTES + 1000  # the report's own keys
        reports.append(parse_step_report(json.loads(request.content)))
        return httpx.Response(200, json={"ok": True, "cancel": False})

    reporter = StepReporter(JOB, client=httpx.Client(transport=httpx.MockTransport(server)))
    assert reporter.claim()
    for i in range(30_000):
        if i % 3:
            reporter.metric_json(json.dumps({"key": "k" * 150, "value": float(i), "step": i,
                                             "time": 1.0}))
        else:
            reporter.metric("k" * 150, float(i), i, 1.0)
    reporter.finish(None, {})
    events = {e["seq"]: e for report in reports for e in report["events"]}
    metric_events = [e for _, e in sorted(events.items()) if e["type"] == "metric"]
    assert [p["step"] for e in metric_events for p in e["points"]] == list(range(30_000))
    firsts = [e["first"] for e in metric_events]
    assert firsts == [1, *(1 + sum(len(e["points"]) for e in metric_events[:n])
                           for n in range(1, len(metric_events)))]
    assert len(reports) > 2


def test_a_burst_too_big_for_one_report_is_sent_without_waiting_between_reports(monkeypatch):
    monkeypatch.setattr("runner.reporter.FLUSH_EVERY_S", 1.0)
    points = []
    sent_at = []

    def server(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        if any(event["type"] == "metric" for event in events):
            sent_at.append(time.monotonic())
        for event in events:
            points.extend(event.get("points", []))
        return httpx.Response(200, json={"ok": True, "cancel": False})

    reporter = StepReporter(JOB, client=httpx.Client(transport=httpx.MockTransport(server)))
    assert reporter.claim()
    for i in range(20_000):  # about four reports' worth
        reporter.metric_json(json.dumps({"key": "k" * 150, "value": 1.0, "step": i, "time": 1.0}))
    wait_until(lambda: len(points) == 20_000, timeout=10, interval=0.05)
    reporter.finish(None, {})
    assert len(sent_at) >= 4 and sent_at[-1] - sent_at[0] < 1.0  # not a second each
