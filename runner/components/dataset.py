"""`dataset`: a registered dataset version as the step's `data` output.

The server resolves the dataset's name and version to an artifact when the step starts and
hands it to the step as the hidden input DATASET_INPUT; the step passes it on unchanged, so
the output has the dataset version's own digest, and a new version means a new input (no
reuse of a step that read the old one).
"""

from runner.components import ComponentDef, Port, registry_params, step_files

# The input port the server fills with the resolved dataset version (no edge feeds it).
DATASET_INPUT = "dataset"

PARAMS_SCHEMA = registry_params(
    "Dataset", "The name of a dataset of the workspace.",
    version={"type": "integer", "minimum": 0, "default": 0, "title": "Version",
             "description": "The version number; 0: the latest when the step starts."},
)

COMPONENT = ComponentDef(
    name="dataset",
    version=1,
    title="Dataset",
    category="Data",
    description="Read a registered dataset version into the pipeline.",
    outputs=(Port("data", "any", description="The dataset version's files"),),
    params_schema=PARAMS_SCHEMA,
    files=step_files("dataset.py", PARAMS_SCHEMA),
)
