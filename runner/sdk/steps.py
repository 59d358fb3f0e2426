"""The building blocks of a pipeline in code, in the vocabulary of Azure ML pipelines:
PipelineParameter, PipelineData, PythonScriptStep and ComponentStep.

Data is declared once and handed from the step that writes it (its `outputs`) to the steps that
read it (their `inputs`); the edges, and so the order, follow from that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

PYTHON_SCRIPT = "python-script@1"
_TYPES = ((bool, "bool"), (int, "int"), (float, "float"), (str, "string"))
_REQUIRED = object()


class PipelineError(ValueError):
    """A pipeline cannot be built as written; the text names the step and what to change."""


class PipelineParameter:
    """A value chosen when the pipeline runs; `default` makes it optional (its type follows
    from the default, or give `type`: int, float, string or bool).

    Use it as a step parameter, or inside an argument string: f"--alpha={alpha}".
    """

    def __init__(self, name: str, default: Any = _REQUIRED, *, type: str | None = None,
                 description: str = "") -> None:
        if type is None and default is _REQUIRED:
            raise PipelineError(f"parameter {name!r} has no default: give it a type")
        self.name, self.description = name, description
        self.default = default
        self.type = type or _type_of(name, default)

    @property
    def reference(self) -> str:
        return "${" + self.name + "}"

    def __str__(self) -> str:
        return self.reference

    def __format__(self, spec: str) -> str:
        return self.reference

    def __repr__(self) -> str:
        return f"PipelineParameter({self.name!r}, type={self.type!r})"

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.default is not _REQUIRED:
            found["default"] = self.default
        return found


def _type_of(name: str, value: Any) -> str:
    for python_type, spec_type in _TYPES:  # bool first: it is also an int
        if isinstance(value, python_type):
            return spec_type
    raise PipelineError(f"parameter {name!r}: a default must be an int, float, str or bool, "
                        f"not {value!r}")


class PipelineData:
    """Data one step writes and later steps read. Declare it once; name it as a port."""

    def __init__(self, name: str, *, type: str = "any") -> None:
        self.name, self.type = name, type
        self.producer: tuple[Step, str] | None = None

    def __repr__(self) -> str:
        return f"PipelineData({self.name!r})"

    def _produced_by(self, step: Step, port: str) -> None:
        if self.producer is not None and self.producer[0] is not step:
            raise PipelineError(f"{self!r} is already an output of step {self.producer[0].name!r};"
                                f" step {step.name!r} cannot write it too")
        self.producer = (step, port)


Ports = Iterable[PipelineData] | Mapping[str, PipelineData]
SourceResolver = Callable[[Path], str]  # a source directory -> its snapshot digest


class Step:
    """What every step has: a name (the node id), data in and out, where and how it runs."""

    component: str = ""

    def __init__(self, name: str, *, inputs: Ports = (), outputs: Ports = (),
                 params: Mapping[str, Any] | None = None, compute_target: str = "local",
                 allow_reuse: bool = True, retries: int = 0, timeout_s: int = 3600,
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.inputs = _ports(name, "inputs", inputs)
        self.outputs = _ports(name, "outputs", outputs)
        self.params = dict(params or {})
        self.compute_target, self.allow_reuse = compute_target, allow_reuse
        self.retries, self.timeout_s, self.env = retries, timeout_s, dict(env or {})
        for port, data in self.outputs.items():
            data._produced_by(self, port)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def parameters(self) -> list[PipelineParameter]:
        """The pipeline parameters this step refers to."""
        return [value for value in _leaves(self._param_values())
                if isinstance(value, PipelineParameter)]

    def _param_values(self) -> Any:
        return self.params

    def node(self, resolve_source: SourceResolver) -> dict[str, Any]:
        """The step as a spec node (without a position: the editor lays out new nodes)."""
        node: dict[str, Any] = {
            "id": self.name, "component": self.component, "compute": self.compute_target,
            "params": _references(self._node_params(resolve_source)),
            "allow_reuse": self.allow_reuse, "retries": self.retries,
            "timeout_s": self.timeout_s,
        }
        if self.env:
            node["env"] = dict(self.env)
        return node

    def _node_params(self, resolve_source: SourceResolver) -> dict[str, Any]:
        return dict(self.params)


class PythonScriptStep(Step):
    """Run `script_name` from `source_directory` (uploaded as a content-addressed snapshot), or
    inline `code`. Inputs and outputs are PipelineData; each is a port named after the data
    (or give a dict {port: data}). The script finds them with `runner.context`:
    context.input_path("raw"), context.output_path("clean"), context.param("alpha")."""

    component = PYTHON_SCRIPT

    def __init__(self, name: str, script_name: str = "main.py", *,
                 source_directory: str | Path | None = None, code: str | None = None,
                 arguments: Iterable[Any] = (), **options: Any) -> None:
        super().__init__(name, **options)
        if (source_directory is None) == (code is None):
            raise PipelineError(f"step {name!r}: give source_directory or code (one of them)")
        self.script_name, self.code = script_name, code
        self.source_directory = Path(source_directory) if source_directory else None
        self.arguments = [_argument(name, value) for value in arguments]
        if self.source_directory and not (self.source_directory / script_name).is_file():
            raise PipelineError(f"step {name!r}: {script_name!r} is not in "
                                f"{str(self.source_directory)!r}")

    def _param_values(self) -> Any:
        return [self.params, self.arguments]

    def _node_params(self, resolve_source: SourceResolver) -> dict[str, Any]:
        # __init__ made sure that exactly one of the two is set.
        code: dict[str, Any] = ({"source": resolve_source(self.source_directory)}
                                if self.source_directory is not None else {"code": self.code})
        return {**self.params, **code, "script": self.script_name,
                "arguments": list(self.arguments)}

    def node(self, resolve_source: SourceResolver) -> dict[str, Any]:
        node = super().node(resolve_source)
        node["ports"] = {
            "inputs": [{"name": port, "type": data.type} for port, data in self.inputs.items()],
            "outputs": [{"name": port, "type": data.type}
                        for port, data in self.outputs.items()],
        }
        return node


class ComponentStep(Step):
    """A step of any component, built in or registered, by "name@version". Its ports are the
    component's: map each port name to PipelineData."""

    def __init__(self, name: str, component: str, **options: Any) -> None:
        if "@" not in component:
            raise PipelineError(f"step {name!r}: name the component with its version, like "
                                f"{component}@1")
        super().__init__(name, **options)
        self.component = component


def _ports(step: str, kind: str, given: Ports) -> dict[str, PipelineData]:
    pairs = given.items() if isinstance(given, Mapping) else (
        (getattr(data, "name", None), data) for data in given)
    ports: dict[str, PipelineData] = {}
    for port, data in pairs:
        if not isinstance(data, PipelineData):
            raise PipelineError(f"step {step!r}: {kind} must be PipelineData, not {data!r}")
        if port in ports:
            raise PipelineError(f"step {step!r}: two {kind} named {port!r}")
        ports[str(port)] = data
    return ports


def _argument(step: str, value: Any) -> str | PipelineParameter:
    if isinstance(value, PipelineData):
        raise PipelineError(f"step {step!r}: pass {value!r} in inputs or outputs, not arguments;"
                            f" the script finds it with context.input_path({value.name!r})")
    if isinstance(value, PipelineParameter) and value.type != "string":
        # A whole "${x}" takes the parameter's typed value, and arguments must be strings.
        raise PipelineError(f"step {step!r}: a {value.type} parameter needs some text around it"
                            f" in arguments, like f\"--{value.name}={{{value.name}}}\"")
    return value if isinstance(value, PipelineParameter) else str(value)


def _references(value: Any) -> Any:
    """Parameters as "${name}", everywhere in a params value."""
    if isinstance(value, PipelineParameter):
        return value.reference
    if isinstance(value, dict):
        return {key: _references(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_references(item) for item in value]
    return value


def _leaves(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    else:
        yield value
