"""`compare-models`: pass on the better of two models, judged by their evaluate metrics."""

from runner.components import ComponentDef, Port, step_files

PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "metric": {
            "type": "string", "enum": ["auto", "accuracy", "f1", "roc_auc", "r2", "rmse", "mae"],
            "default": "auto", "title": "Metric",
            "description": "Which of evaluate's metrics decides; rmse and mae are better "
                           "lower. auto: accuracy or r2.",
        },
    },
}

COMPONENT = ComponentDef(
    name="compare-models",
    version=1,
    title="Compare models",
    category="Machine learning",
    description="Pass on the better of two models by a metric from their evaluate steps "
                "(the first wins a tie).",
    inputs=(Port("model_a", "model"), Port("metrics_a", "json", description="evaluate's metrics"),
            Port("model_b", "model"), Port("metrics_b", "json", description="evaluate's metrics")),
    outputs=(Port("best", "model", description="A copy of the better model"),
             Port("comparison", "json", description="comparison.json: both scores, the winner"),
             Port("metrics", "json", description="The better model's metrics (as evaluate's)")),
    params_schema=PARAMS_SCHEMA,
    files=step_files("compare_models.py", PARAMS_SCHEMA),
)
