"""Built-in components: the registry of step types that ship with the product.

A component is a reusable step type: typed input and output ports, a JSON Schema for its
parameters, and an entry command. Registered (user) components use the same `ComponentDef`
shape, so the validator and the editor's palette treat both alike.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Port types an edge may join. "any" joins with every type.
PORT_TYPES = ("any", "file", "folder", "table", "model", "json", "text", "image")


@dataclass(frozen=True)
class Port:
    name: str
    type: str = "any"
    optional: bool = False
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "optional": self.optional,
                "description": self.description}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Port:
        return cls(name=data["name"], type=data.get("type", "any"),
                   optional=bool(data.get("optional", False)),
                   description=data.get("description", ""))


@dataclass(frozen=True)
class ComponentDef:
    name: str
    version: int
    title: str
    category: str
    description: str
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    params_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    # The entry command; "{python}" stands for the step's interpreter.
    command: tuple[str, ...] = ("{python}", "main.py")
    # The component's own files (name -> text), shipped with the job when the node gives none.
    files: dict[str, str] = field(default_factory=dict)
    # Nodes of this component declare their own ports (e.g. a Python script step).
    dynamic_ports: bool = False

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def code_digest(self) -> str:
        """Digest of what the component runs; a change here invalidates reuse."""
        body = json.dumps({"command": self.command, "files": self.files}, sort_keys=True)
        return "sha256:" + hashlib.sha256(body.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "version": self.version, "key": self.key, "title": self.title,
            "category": self.category, "description": self.description,
            "inputs": [p.to_dict() for p in self.inputs],
            "outputs": [p.to_dict() for p in self.outputs],
            "params_schema": self.params_schema, "command": list(self.command),
            "dynamic_ports": self.dynamic_ports, "code_digest": self.code_digest,
        }


# The step scripts of the built-in components: read here as text and shipped with each job,
# never imported by the server or the worker.
STEPS_DIR = Path(__file__).with_name("steps")


def step_files(script: str, params_schema: dict[str, Any]) -> dict[str, str]:
    """A built-in component's files: its step script as main.py, the shared steplib.py, and
    its parameter schema, from which the step takes the defaults of parameters not given."""
    return {
        "main.py": (STEPS_DIR / script).read_text(encoding="utf-8"),
        "steplib.py": (STEPS_DIR / "steplib.py").read_text(encoding="utf-8"),
        "params_schema.json": json.dumps(params_schema, indent=1, sort_keys=True),
    }


# A dataset's or model's name in the registry: a slug. The default "" keeps the schema whole;
# the server says that the name is missing when such a step starts.
REGISTRY_NAME_PATTERN = "^([a-zA-Z0-9][-a-zA-Z0-9_]*)?$"
DESCRIPTION_PARAM = {"type": "string", "default": "", "maxLength": 1000, "title": "Description",
                     "description": "Stored with the new version."}


def registry_params(name_title: str, name_description: str,
                    **more: dict[str, Any]) -> dict[str, Any]:
    """The parameter schema of a registry step: a required `name`, then `more` parameters."""
    name = {"type": "string", "default": "", "maxLength": 100, "pattern": REGISTRY_NAME_PATTERN,
            "title": name_title, "description": name_description}
    return {"type": "object", "additionalProperties": False, "required": ["name"],
            "properties": {"name": name, **more}}


def _load_builtins() -> dict[str, ComponentDef]:
    from runner.components import (
        automl,
        compare_models,
        data_transfer,
        dataset,
        deploy_model,
        evaluate,
        parallel_run,
        python_script,
        register_dataset,
        register_model,
        sample_data,
        split_data,
        train_sklearn,
    )

    modules = (python_script, sample_data, split_data, train_sklearn, evaluate, automl,
               compare_models, parallel_run, data_transfer, dataset, register_dataset,
               register_model, deploy_model)
    return {module.COMPONENT.key: module.COMPONENT for module in modules}


BUILTINS: dict[str, ComponentDef] = _load_builtins()
