"""dataset passes on the version the server resolved, with that version's own digest."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Step


def test_it_passes_a_folder_on_with_the_same_digest(step: Step) -> None:
    version = step.publish_table([["x", "y"], [1, 2]])
    result, sink = step.ok("dataset@1", {"name": "points", "version": 3}, {"dataset": version})
    assert result.outputs["data"]["digest"] == version["digest"]
    assert step.read_table(result.outputs["data"]) == [{"x": "1", "y": "2"}]
    assert any("dataset points (3)" in line for line in sink.texts("stdout"))


def test_a_single_file_stays_a_file(step: Step) -> None:
    source = step.tmp_path / "notes.txt"
    source.write_text("one file\n")
    version = step.store.publish(source)
    result, _ = step.ok("dataset@1", {"name": "notes"}, {"dataset": version})
    assert result.outputs["data"]["digest"] == version["digest"]
    assert step.fetch(result.outputs["data"]).read_text() == "one file\n"


def test_without_the_server_resolving_it_the_step_says_so(step: Step) -> None:
    message = step.failed("dataset@1", {"name": "points"})
    assert message.startswith("no files for dataset 'points'")
