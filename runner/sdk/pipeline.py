"""A pipeline: steps built in code, or a spec drawn in the editor and loaded. One spec either
way; saving one from code keeps the editor's node positions, and the editor lays out nodes that
have none."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runner.components import BUILTINS, ComponentDef, Port
from runner.sdk.client import ApiError, Client
from runner.sdk.runs import Run
from runner.sdk.snapshots import snapshot_digest, upload_snapshot
from runner.sdk.steps import PipelineError, PipelineParameter, SourceResolver, Step
from runner.spec_validation import validate_spec


class PipelineInvalid(Exception):
    """The spec has errors: `errors` lists them as {"node", "field", "message"}, the same
    errors the editor shows."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        lines = [f"{e.get('node') or '-'} {e.get('field') or ''}: {e['message']}" for e in errors]
        super().__init__("the pipeline is not valid:\n  " + "\n  ".join(lines))


class Pipeline:
    """A named pipeline of a workspace. Give `steps` (their upstream steps are found through
    the data they read), or load a saved one with Pipeline.load()."""

    def __init__(self, client: Client | None, steps: Iterable[Step] = (), *, name: str,
                 description: str = "", parameters: Iterable[PipelineParameter] = ()) -> None:
        self.client, self.name, self.description = client, name, description
        self.steps = _with_upstream(list(steps))
        self.parameters = _collect_parameters(self.steps, parameters)
        self.id: int | None = None
        self._loaded_spec: dict[str, Any] | None = None
        self._sources: dict[Path, str] = {}

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, id={self.id})"

    @classmethod
    def load(cls, client: Client, name_or_id: str | int) -> Pipeline:
        """A saved pipeline (drawn in the editor, or saved from code), by name or id."""
        found = _find(client, name_or_id)
        if found is None:
            raise ApiError(404, f"no pipeline {name_or_id!r} in workspace {client.workspace}")
        detail = client.get(f"/api/pipelines/{found['id']}/")
        pipeline = cls(client, name=detail["name"], description=detail["description"])
        pipeline.id, pipeline._loaded_spec = detail["id"], detail["spec"]
        return pipeline

    @classmethod
    def from_file(cls, client: Client | None, path: str | Path, *, name: str) -> Pipeline:
        """A pipeline from a spec file (JSON, as the editor exports it)."""
        try:
            spec = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PipelineError(f"cannot read the spec {path}: {exc}") from None
        pipeline = cls(client, name=name)
        pipeline._loaded_spec = spec
        return pipeline

    # --- The spec ----------------------------------------------------------------------------

    def to_spec(self, *, upload: bool = False) -> dict[str, Any]:
        """The spec document. Source directories become snapshot digests: uploaded with
        `upload`, else computed locally (the same digest the upload gives)."""
        if self._loaded_spec is not None:
            return json.loads(json.dumps(self._loaded_spec))
        resolve = self._uploader() if upload else _local_digest
        nodes = [step.node(resolve) for step in self.steps]
        edges = [{"from": f"{data.producer[0].name}.{data.producer[1]}",
                  "to": f"{step.name}.{port}"}
                 for step in self.steps for port, data in step.inputs.items()
                 if data.producer is not None]
        return {"parameters": {p.name: p.to_dict() for p in self.parameters},
                "nodes": nodes, "edges": edges}

    def _uploader(self) -> SourceResolver:
        client = self._need_client()

        def resolve(folder: Path) -> str:
            key = folder.resolve()
            if key not in self._sources:
                self._sources[key] = upload_snapshot(client, folder)
            return self._sources[key]
        return resolve

    def validate(self) -> list[dict[str, Any]]:
        """The spec's errors, found here with the server's own validator (no upload, no save);
        with a client, registered components are known too. Empty when valid."""
        components = dict(BUILTINS)
        if self.client is not None:
            components.update(registered_components(self.client))
        _spec, errors = validate_spec(self.to_spec(), components)
        return [error.to_dict() for error in errors]

    # --- On the server -----------------------------------------------------------------------

    def save(self) -> list[dict[str, Any]]:
        """Save the spec as the pipeline's draft (uploading source snapshots); the server's
        errors for it, empty when it is valid. An invalid draft is still saved, as in the
        editor."""
        client = self._need_client()
        spec = self.to_spec(upload=True)
        found = _find(client, self.id or self.name)
        if found is None:
            saved = client.post("/api/pipelines/", {"workspace": client.workspace,
                                                    "name": self.name, "spec": spec,
                                                    "description": self.description})
        else:
            current = client.get(f"/api/pipelines/{found['id']}/")
            saved = client.patch(f"/api/pipelines/{found['id']}/", {
                "spec": _keep_positions(spec, current["spec"]),
                "revision": current["revision"]})
        self.id = saved["id"]
        return saved["errors"]

    def submit(self, parameters: Mapping[str, Any] | None = None, *,
               tags: Iterable[str] = (), note: str = "") -> Run:
        """Save the draft and run it; PipelineInvalid (nothing runs) if it is not valid."""
        self._save_valid()
        body = {"parameters": dict(parameters or {}), "tags": list(tags), "note": note}
        return Run(self._need_client(), self._need_client().post(
            f"/api/pipelines/{self.id}/runs/", body))

    def publish(self, message: str = "") -> int:
        """Save the draft and freeze it as the next version; its number."""
        self._save_valid()
        version = self._need_client().post(f"/api/pipelines/{self.id}/versions/",
                                           {"message": message})
        return int(version["number"])

    def run_version(self, version: int, parameters: Mapping[str, Any] | None = None) -> Run:
        """Run a published version as it was frozen (not the draft)."""
        client = self._need_client()
        if self.id is None:
            self.id = _need(_find(client, self.name), self.name)["id"]
        return Run(client, client.post(f"/api/pipelines/{self.id}/runs/", {
            "parameters": dict(parameters or {}), "version": version}))

    @property
    def editor_url(self) -> str:
        """Where the saved pipeline opens in the browser editor."""
        if self.id is None:
            raise PipelineError(f"save pipeline {self.name!r} first")
        return self._need_client().editor_url(self.id)

    def _save_valid(self) -> None:
        errors = self.save()
        if errors:
            raise PipelineInvalid(errors)

    def _need_client(self) -> Client:
        if self.client is None:
            raise PipelineError(f"pipeline {self.name!r} has no client: Pipeline(connect(), ...)")
        return self.client


def registered_components(client: Client) -> dict[str, ComponentDef]:
    """The workspace's registered components, as the validator knows components."""
    found = {}
    for row in client.paginate("/api/components/", workspace=client.workspace):
        if row["builtin"]:
            continue
        found[row["key"]] = ComponentDef(
            name=row["name"], version=row["version"], title=row["title"],
            category=row["category"], description=row["description"],
            inputs=tuple(Port.from_dict(p) for p in row["inputs"]),
            outputs=tuple(Port.from_dict(p) for p in row["outputs"]),
            params_schema=row["params_schema"], command=tuple(row["command"]),
            dynamic_ports=row["dynamic_ports"])
    return found


def _local_digest(folder: Path) -> str:
    return snapshot_digest(folder)


def _find(client: Client, name_or_id: str | int) -> dict[str, Any] | None:
    if isinstance(name_or_id, int):
        try:
            return client.get(f"/api/pipelines/{name_or_id}/")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
    matches = client.paginate("/api/pipelines/", workspace=client.workspace, search=name_or_id)
    return next((p for p in matches if p["name"] == name_or_id), None)


def _need(found: dict[str, Any] | None, name: str) -> dict[str, Any]:
    if found is None:
        raise PipelineError(f"pipeline {name!r} is not saved yet: submit() or publish() it")
    return found


def _keep_positions(spec: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """Nodes keep the places they were given in the editor."""
    placed = {node.get("id"): node["position"] for node in current.get("nodes", [])
              if isinstance(node, dict) and "position" in node}
    for node in spec["nodes"]:
        if "position" not in node and node["id"] in placed:
            node["position"] = placed[node["id"]]
    return spec


def _with_upstream(steps: list[Step]) -> list[Step]:
    """The steps and every step that writes data they read, producers first."""
    ordered: list[Step] = []
    seen: set[int] = set()

    def visit(step: Step, path: tuple[str, ...]) -> None:
        if id(step) in seen:
            return
        if step.name in path:
            raise PipelineError(f"steps {' -> '.join((*path, step.name))} form a cycle")
        for data in step.inputs.values():
            if data.producer is None:
                raise PipelineError(f"step {step.name!r} reads {data!r}, which no step writes "
                                    "(add it to a step's outputs)")
            visit(data.producer[0], (*path, step.name))
        seen.add(id(step))
        ordered.append(step)

    for step in steps:
        visit(step, ())
    names = [step.name for step in ordered]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise PipelineError(f"two steps are named {', '.join(map(repr, twice))}; names must differ")
    return ordered


def _collect_parameters(steps: list[Step],
                        declared: Iterable[PipelineParameter]) -> list[PipelineParameter]:
    found: dict[str, PipelineParameter] = {}
    for parameter in [*declared, *(p for step in steps for p in step.parameters())]:
        other = found.setdefault(parameter.name, parameter)
        if other is not parameter and other.to_dict() != parameter.to_dict():
            raise PipelineError(f"two different parameters are named {parameter.name!r}")
    return list(found.values())
