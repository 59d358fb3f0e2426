"""Published pipelines: endpoints (a name that runs a chosen version), their schedules, and
components registered from code."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runner.sdk.client import ApiError, Client
from runner.sdk.pipeline import Pipeline
from runner.sdk.runs import Run
from runner.sdk.steps import PipelineError


class Endpoint:
    """A published pipeline by name: POST to it (with a token) to run its default version."""

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self.client, self.data = client, data

    def __repr__(self) -> str:
        return f"Endpoint({self.name!r}, default_version={self.default_version})"

    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def default_version(self) -> int:
        return int(self.data["default_version"])

    @property
    def url(self) -> str:
        """Where outside systems POST {"parameters": {...}} to start a run."""
        return f"{self.client.url}/api/endpoints/{self.name}/runs/"

    @classmethod
    def get(cls, client: Client, name: str) -> Endpoint:
        return cls(client, client.get(f"/api/endpoints/{name}/",
                                      workspace=client.chosen_workspace))

    @classmethod
    def publish(cls, client: Client, name: str, pipeline: Pipeline, *,
                version: int | None = None, description: str = "") -> Endpoint:
        """Create the endpoint, or point an existing one at `version` (default: the
        pipeline's latest version)."""
        if pipeline.id is None:
            raise PipelineError(f"pipeline {pipeline.name!r} has no version yet: publish() it")
        try:
            endpoint = cls.get(client, name)
        except ApiError as exc:
            if exc.status != 404:
                raise
            body: dict[str, Any] = {"pipeline": pipeline.id, "name": name,
                                    "description": description}
            if version is not None:
                body["default_version"] = version
            return cls(client, client.post("/api/endpoints/", body))
        if endpoint.data["pipeline"] != pipeline.id:
            raise PipelineError(f"endpoint {name!r} publishes pipeline "
                                f"{endpoint.data['pipeline_name']!r}, not {pipeline.name!r}")
        latest = client.get(f"/api/pipelines/{pipeline.id}/")["latest_version"]
        return endpoint.set_default_version(version or latest)

    def set_default_version(self, version: int) -> Endpoint:
        """Republish: runs started from now on use `version`."""
        self.data = self.client.patch(f"/api/endpoints/{self.name}/",
                                      {"default_version": version},
                                      workspace=self.client.chosen_workspace)
        return self

    def trigger(self, parameters: Mapping[str, Any] | None = None, *,
                version: int | None = None) -> Run:
        """Start a run of the default version (or `version`)."""
        return trigger_endpoint(self.client, self.name, parameters, version=version)

    def schedule(self, name: str, cron: str, *, parameters: Mapping[str, Any] | None = None,
                 time_zone: str = "UTC", enabled: bool = True) -> dict[str, Any]:
        """Run the endpoint on a cron schedule ("minute hour day month weekday")."""
        return self.client.post("/api/schedules/", {
            "endpoint": self.data["id"], "name": name, "cron": cron, "time_zone": time_zone,
            "parameters": dict(parameters or {}), "enabled": enabled})


def trigger_endpoint(client: Client, name: str, parameters: Mapping[str, Any] | None = None,
                     *, version: int | None = None) -> Run:
    """Start a run of an endpoint by name: all a token with only the endpoint:invoke scope
    may do (it cannot read the endpoint first)."""
    body: dict[str, Any] = {"parameters": dict(parameters or {})}
    if version is not None:
        body["version"] = version
    return Run(client, client.post(f"/api/endpoints/{name}/runs/", body,
                                   workspace=client.chosen_workspace))


def register_component(client: Client, name: str, *, source_directory: str | Path,
                       command: Iterable[str] = ("{python}", "main.py"),
                       inputs: Iterable[Mapping[str, Any]] = (),
                       outputs: Iterable[Mapping[str, Any]] = (),
                       params_schema: Mapping[str, Any] | None = None, title: str = "",
                       category: str = "Custom", description: str = "") -> str:
    """Register the next version of a component from a folder of text files (its code);
    its key, "name@version", for ComponentStep."""
    files = _text_files(Path(source_directory))
    body = {"workspace": client.workspace, "name": name, "title": title or name,
            "category": category, "description": description, "files": files,
            "command": list(command), "inputs": [dict(p) for p in inputs],
            "outputs": [dict(p) for p in outputs],
            "params_schema": dict(params_schema or {"type": "object"})}
    return str(client.post("/api/components/", body)["key"])


def _text_files(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        raise PipelineError(f"source_directory {str(folder)!r} is not a folder")
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        try:
            files[path.relative_to(folder).as_posix()] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise PipelineError(f"{path} is not UTF-8 text; a component's files are text "
                                "(put data in a dataset)") from None
    return files
