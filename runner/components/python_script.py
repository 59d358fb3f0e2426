"""`python-script`: run Python code given inline or as an uploaded source snapshot.

The workhorse step. Its node declares its own input and output ports; the script finds them
through `runner.context` or through the environment variables PIPELINES_INPUT_<PORT> and
PIPELINES_OUTPUT_<PORT>, and its parameters in PIPELINES_PARAMS (a JSON file path).
"""

from runner.components import ComponentDef

COMPONENT = ComponentDef(
    name="python-script",
    version=1,
    title="Python script",
    category="General",
    description="Run Python code, inline or from an uploaded source directory.",
    dynamic_ports=True,
    params_schema={
        "type": "object",
        "additionalProperties": True,
        "properties": {
            "code": {"type": "string", "format": "code", "title": "Inline code"},
            "source": {
                "type": "string",
                "pattern": "^sha256:[0-9a-f]{64}$",
                "title": "Source snapshot digest",
            },
            "script": {"type": "string", "default": "main.py", "minLength": 1},
            "arguments": {"type": "array", "items": {"type": "string"}, "default": []},
        },
        # Any other key is a parameter of the script itself, given to it in PIPELINES_PARAMS.
        "oneOf": [{"required": ["code"]}, {"required": ["source"]}],
    },
    command=("{python}", "{script}"),
)
