"""`register-dataset`: register a step's output as the next version of a dataset.

The step checks that its input holds something; the server registers the input's artifact
when the step succeeds, in the transaction that records its end, with the step as lineage.
"""

from runner.components import DESCRIPTION_PARAM, ComponentDef, Port, registry_params, step_files

PARAMS_SCHEMA = registry_params("Dataset", "The dataset's name; a new name creates the dataset.",
                                description=DESCRIPTION_PARAM)

COMPONENT = ComponentDef(
    name="register-dataset",
    version=1,
    title="Register dataset",
    category="Data",
    description="Register the input as the next version of a dataset when the step succeeds.",
    inputs=(Port("data", "any", description="The files to register"),),
    params_schema=PARAMS_SCHEMA,
    files=step_files("register_dataset.py", PARAMS_SCHEMA),
)
