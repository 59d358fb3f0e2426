"""Validating a worker's report: the lines and points are checked apart from the schema, for
speed, and must be accepted and refused exactly as the schema alone would."""

from __future__ import annotations

import math

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.messages import (
    MAX_LOG_LINES_PER_EVENT,
    MAX_METRIC_POINTS_PER_EVENT,
    STEP_REPORT_SCHEMA,
    MessageError,
    parse_step_report,
)

ODD = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.floats(), st.text(max_size=2),
                st.just([]), st.just({}))
NUMBERS = st.one_of(st.integers(-2, 2), st.floats(allow_nan=False))
GOOD_POINTS = st.fixed_dictionaries({
    "key": st.one_of(st.text(min_size=1, max_size=3), st.just("k" * 200)), "value": NUMBERS,
    "step": st.one_of(st.none(), st.integers(-2, 2)), "time": NUMBERS})
GOOD_LINES = st.fixed_dictionaries({
    "stream": st.sampled_from(["stdout", "stderr", "system"]),
    "text": st.one_of(st.text(max_size=3), st.just("x" * 8192)), "time": NUMBERS})
# Values each field must refuse, and some odd ones it must take (1.0 is an integer to JSON
# Schema); "drop" and "extra" stand for a missing field and one too many.
SPOILS = {
    "key": ["", "k" * 201, None, 1, True, [], "drop"],
    "value": [None, True, "1", [], {}, math.nan, 2, "drop"],
    "step": [True, 1.5, "1", [], {}, 1.0, "drop"],
    "time": [None, False, "1", [], 3, "drop"],
    "stream": ["other", None, 1, [], "drop"],
    "text": ["x" * 8193, None, 1, [], "drop"],
    "extra": [1],
}


def spoiled(good: st.SearchStrategy, fields: list[str]) -> st.SearchStrategy:
    def spoil(item: dict, field: str, value) -> dict:
        item = dict(item)
        if value == "drop":
            item.pop(field, None)
        else:
            item[field] = value
        return item

    return st.sampled_from([*fields, "extra"]).flatmap(
        lambda field: st.builds(spoil, good, st.just(field), st.sampled_from(SPOILS[field])))


POINT_FIELDS = ["key", "value", "step", "time"]
LINE_FIELDS = ["stream", "text", "time"]


@st.composite
def one_bad_item_or_none(draw) -> dict:
    """A good report of one event, or the same with one item spoiled, most often not the
    first (which the rest of the report is checked with)."""
    kind, field, good, fields = draw(st.sampled_from([
        ("metric", "points", GOOD_POINTS, POINT_FIELDS),
        ("log", "lines", GOOD_LINES, LINE_FIELDS)]))
    items = draw(st.lists(good, min_size=1, max_size=4))
    if draw(st.integers(0, 3)):
        items.insert(draw(st.integers(min(1, len(items)), len(items))),
                     draw(spoiled(good, fields)))
    return {"attempt_id": "a" * 16,
            "events": [{"type": kind, "seq": 1, "time": 1.0, "first": 1, field: items}]}


def events(kind: str, field: str, items: st.SearchStrategy) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {"type": st.just(kind), "seq": st.integers(1, 3), "time": NUMBERS,
         "first": st.integers(1, 3), field: st.lists(items, min_size=1, max_size=4)})


# Reports that may be wrong anywhere: in their events, their items or around them.
EVENTS = st.one_of(
    events("metric", "points", st.one_of(GOOD_POINTS, spoiled(GOOD_POINTS, POINT_FIELDS))),
    events("log", "lines", st.one_of(GOOD_LINES, spoiled(GOOD_LINES, LINE_FIELDS))))
ODD_EVENTS = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["metric", "log", "heartbeat"]), ODD),
     "seq": st.one_of(st.integers(0, 2), ODD), "time": st.one_of(NUMBERS, ODD)},
    optional={"first": st.one_of(st.integers(0, 2), ODD),
              "points": st.one_of(st.lists(GOOD_POINTS, max_size=2), ODD),
              "lines": st.one_of(st.lists(GOOD_LINES, max_size=2), ODD)})
ANY_REPORTS = st.fixed_dictionaries({
    "attempt_id": st.one_of(st.just("a" * 16), ODD),
    "events": st.one_of(st.lists(st.one_of(EVENTS, ODD_EVENTS, ODD), max_size=3), ODD)})


def accepted(report) -> bool:
    try:
        parse_step_report(report)
    except MessageError:
        return False
    return True


def agrees_with_the_schema(report) -> bool:
    return accepted(report) == jsonschema.Draft202012Validator(STEP_REPORT_SCHEMA).is_valid(report)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(one_bad_item_or_none())
def test_a_bad_line_or_point_anywhere_is_refused_as_the_schema_refuses_it(report):
    assert agrees_with_the_schema(report)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_REPORTS)
def test_any_report_is_accepted_exactly_when_the_schema_accepts_it(report):
    assert agrees_with_the_schema(report)


@pytest.mark.parametrize(("kind", "field", "item", "most"), [
    ("metric", "points", {"key": "loss", "value": 0.5, "step": 1, "time": 1.0},
     MAX_METRIC_POINTS_PER_EVENT),
    ("log", "lines", {"stream": "stdout", "text": "hi", "time": 1.0}, MAX_LOG_LINES_PER_EVENT),
])
def test_an_event_holds_at_most_its_limit_of_items(kind, field, item, most):
    def report(n: int) -> dict:
        return {"attempt_id": "a" * 16,
                "events": [{"type": kind, "seq": 1, "time": 1.0, "first": 1, field: [item] * n}]}

    assert accepted(report(most))
    with pytest.raises(MessageError, match=f"events/0/{field}"):
        parse_step_report(report(most + 1))
    with pytest.raises(MessageError, match=f"events/0/{field}/1/"):
        parse_step_report({**report(2), "events": [{**report(2)["events"][0], field: [
            item, {**item, "time": "late"}]}]})
