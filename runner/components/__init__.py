"""Built-in components: the registry of step types that ship with the product.

A component is a reusable step type: typed input and output ports, a JSON Schema for its
parameters, and an entry command. Registered (user) components use the same `ComponentDef`
shape, so the validator and the editor's palette treat both alike.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
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


def _load_builtins() -> dict[str, ComponentDef]:
    from runner.components import python_script

    return {c.key: c for c in (python_script.COMPONENT,)}


BUILTINS: dict[str, ComponentDef] = _load_builtins()
