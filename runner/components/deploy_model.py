"""`deploy-model`: serve a registered model version at the server's scoring endpoint.

The step loads the model and scores one row to prove that it works in this environment; the
server then marks the registered version that holds this model (registered by a
register-model step before it) as deployed: POST /api/models/{name}/versions/{v}/score.
"""

from runner.components import ComponentDef, Port, registry_params, step_files

PARAMS_SCHEMA = registry_params(
    "Model name", "The registered model whose version holding the input is deployed.")

COMPONENT = ComponentDef(
    name="deploy-model",
    version=1,
    title="Deploy model",
    category="Deployment",
    description="Serve a registered model version at POST /api/models/{name}/versions/{v}/"
                "score when the step succeeds.",
    inputs=(Port("model", "model", description="register-model's output"),),
    params_schema=PARAMS_SCHEMA,
    files=step_files("deploy_model.py", PARAMS_SCHEMA),
)
