"""`register-model`: register a model as the next version of a named model in the registry.

The step checks the model and logs the metrics of its evaluation (evaluate's metrics.json) as
its own metrics; the server, when the step succeeds, registers the model artifact with those
metrics and the step as lineage. The `model` output is the same model, for a deploy-model
step to follow.
"""

from runner.components import DESCRIPTION_PARAM, ComponentDef, Port, registry_params, step_files

PARAMS_SCHEMA = registry_params("Model name",
                                "The registered model's name; a new name creates it.",
                                description=DESCRIPTION_PARAM)

COMPONENT = ComponentDef(
    name="register-model",
    version=1,
    title="Register model",
    category="Deployment",
    description="Register a model, with its evaluation metrics, as the next version of a "
                "named model when the step succeeds.",
    inputs=(Port("model", "model", description="From train-sklearn, automl or compare-models"),
            Port("metrics", "json", optional=True, description="evaluate's metrics")),
    outputs=(Port("model", "model", description="The same model, for deploy-model"),),
    params_schema=PARAMS_SCHEMA,
    files=step_files("register_model.py", PARAMS_SCHEMA),
)
