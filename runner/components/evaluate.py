"""`evaluate`: score a model on a test table; metrics, a metrics file and a plot."""

from runner.components import ComponentDef, Port, step_files

PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "target_column": {
            "type": "string", "default": "", "title": "Target column",
            "description": "The column with the true values; empty: the model's own.",
        },
        "metric_prefix": {
            "type": "string", "default": "", "maxLength": 50, "title": "Metric prefix",
            "description": "Put before each metric's key, e.g. \"test_\" gives test_accuracy.",
        },
    },
}

COMPONENT = ComponentDef(
    name="evaluate",
    version=1,
    title="Evaluate model",
    category="Machine learning",
    description="Score a model on a test table: accuracy, F1 and ROC AUC for a classifier, "
                "RMSE, MAE and R² for a regressor; a confusion matrix or residual plot.",
    inputs=(Port("model", "model", description="From train-sklearn or automl"),
            Port("data", "table", description="Test rows with the target column")),
    outputs=(Port("metrics", "json", description="metrics.json"),
             Port("plot", "image", description="confusion_matrix.png or residuals.png")),
    params_schema=PARAMS_SCHEMA,
    files=step_files("evaluate.py", PARAMS_SCHEMA),
)
