"""register-dataset checks that there is something to register (the server registers it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Step


def test_it_counts_the_files_it_will_register(step: Step) -> None:
    data = step.publish_text({"a.csv": "x\n1\n", "sub/b.csv": "x\n2\n"})
    _, sink = step.ok("register-dataset@1", {"name": "parts"}, {"data": data})
    assert sink.metric_values("files") == [2.0]
    assert sink.metric_values("bytes") == [8.0]


def test_an_empty_input_fails_with_a_sentence(step: Step) -> None:
    empty = step.publish_text({})
    message = step.failed("register-dataset@1", {"name": "parts"}, {"data": empty})
    assert message == "input 'data' holds no files; there is nothing to register"
