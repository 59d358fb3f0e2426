"""Run a built-in component as the worker would: its job through the executor, a real
subprocess, a file:// datastore in tmp_path."""

from __future__ import annotations

import csv
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runner.components import BUILTINS
from runner.datastore import Datastore
from runner.executor import StepResult, execute
from runner.messages import ArtifactRef, parse_step_job


@dataclass
class RecordingSink:
    lines: list[tuple[str, str]] = field(default_factory=list)
    metrics: list[tuple[str, float, int | None]] = field(default_factory=list)

    def log(self, stream: str, text: str, time: float) -> None:
        self.lines.append((stream, text))

    def metric(self, key: str, value: float, step: int | None, time: float) -> None:
        self.metrics.append((key, value, step))

    def texts(self, stream: str) -> list[str]:
        return [text for name, text in self.lines if name == stream]

    def last_error(self) -> str:
        """The last line of stderr: where a component states why it failed."""
        return self.texts("stderr")[-1]

    def metric_values(self, key: str) -> list[float]:
        return [value for name, value, _ in self.metrics if name == key]


@dataclass
class Step:
    tmp_path: Path

    @property
    def store(self) -> Datastore:
        return Datastore(f"file://{self.tmp_path / 'store'}")

    def run(self, component: str, params: dict[str, Any] | None = None,
            inputs: dict[str, ArtifactRef] | None = None, env: dict[str, str] | None = None,
            timeout_s: int = 120) -> tuple[StepResult, RecordingSink]:
        """Run a built-in component with these params and inputs, all outputs declared."""
        definition = BUILTINS[component]
        job = parse_step_job({
            "version": 1, "run_id": "run-1", "step_run_id": 1, "node": "step", "attempt": 1,
            "attempt_id": uuid.uuid4().hex, "token": "t" * 32,
            "server_url": "http://127.0.0.1:8000", "component": component,
            "command": list(definition.command), "code": {"inline": dict(definition.files)},
            "params": params or {}, "inputs": inputs or {},
            "outputs": [port.name for port in definition.outputs], "env": env or {},
            "secrets": {}, "python": None, "datastore_url": self.store.url,
            "timeout_s": timeout_s, "heartbeat_s": 5.0, "lost_contact_s": 60.0,
        })
        sink = RecordingSink()
        return execute(job, sink, workdir_root=self.tmp_path / "work"), sink

    def ok(self, component: str, params: dict[str, Any] | None = None,
           inputs: dict[str, ArtifactRef] | None = None,
           **kwargs: Any) -> tuple[StepResult, RecordingSink]:
        """Run a component that must succeed; show its output when it did not."""
        result, sink = self.run(component, params, inputs, **kwargs)
        assert result.status == "succeeded", (result, sink.lines[-30:])
        return result, sink

    def failed(self, component: str, params: dict[str, Any] | None = None,
               inputs: dict[str, ArtifactRef] | None = None, **kwargs: Any) -> str:
        """Run a component that must fail cleanly: exit code 2, no traceback; its message."""
        result, sink = self.run(component, params, inputs, **kwargs)
        assert result.status == "failed", (result, sink.lines[-30:])
        assert (result.reason, result.exit_code) == ("exit", 2), (result, sink.lines[-30:])
        assert "Traceback" not in result.traceback, result.traceback
        return sink.last_error()

    def publish_table(self, rows: list[list[Any]], name: str = "data.csv") -> ArtifactRef:
        """Publish rows (the first one the header) as a one-file table artifact."""
        folder = self.tmp_path / f"table-{uuid.uuid4().hex}"
        folder.mkdir()
        with (folder / name).open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
        return self.store.publish(folder)

    def publish_dataset(self, name: str, rows: int | None = None) -> ArtifactRef:
        """A bundled scikit-learn data set (its first `rows` rows) as a table artifact."""
        return self.publish_table(dataset_rows(name, rows))

    def dataset_rows(self, name: str, rows: int | None = None) -> list[list[Any]]:
        return dataset_rows(name, rows)

    def publish_fitted(self, estimator: Any, name: str, rows: list[list[Any]],
                       task: str) -> ArtifactRef:
        """Fit `estimator` on rows (header first, target last) here; publish it as a model."""
        import numpy as np

        header, body = rows[0], np.array(rows[1:], dtype=float)
        target = body[:, -1].astype(int) if task == "classification" else body[:, -1]
        estimator.fit(body[:, :-1], target)
        return self.publish_model(estimator, {
            "estimator": name, "task": task, "hyperparameters": {}, "target_column": "target",
            "feature_columns": header[:-1],
            "classes": sorted(set(target.tolist())) if task == "classification" else None})

    def publish_model(self, estimator: Any, settings: dict[str, Any]) -> ArtifactRef:
        """A model artifact as train-sklearn writes it: model.joblib and settings.json."""
        import joblib

        folder = self.tmp_path / f"model-{uuid.uuid4().hex}"
        folder.mkdir()
        joblib.dump(estimator, folder / "model.joblib")
        (folder / "settings.json").write_text(json.dumps(settings))
        return self.store.publish(folder)

    def publish_text(self, files: dict[str, str]) -> ArtifactRef:
        folder = self.tmp_path / f"files-{uuid.uuid4().hex}"
        for name, text in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
        folder.mkdir(exist_ok=True)
        return self.store.publish(folder)

    def fetch(self, ref: ArtifactRef) -> Path:
        """A local path to an artifact's content."""
        dest = self.tmp_path / f"fetched-{uuid.uuid4().hex}"
        Datastore.containing(ref).materialize(ref, dest)
        return dest

    def read_table(self, ref: ArtifactRef) -> list[dict[str, str]]:
        [csv_file] = list(self.fetch(ref).glob("*.csv"))
        with csv_file.open(newline="") as handle:
            return list(csv.DictReader(handle))


def dataset_rows(name: str, rows: int | None = None) -> list[list[Any]]:
    """A bundled scikit-learn data set as table rows (header first), the first `rows` only."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    header = [*map(str, bunch.feature_names), "target"]
    body = [[*map(float, features), target.item()]
            for features, target in zip(bunch.data[:rows], bunch.target[:rows], strict=True)]
    return [header, *body]


@pytest.fixture
def step(tmp_path: Path) -> Step:
    return Step(tmp_path)

