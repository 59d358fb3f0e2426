"""`parallel-run`: batch scoring of a large table in mini-batches over worker processes."""

from runner.components import ComponentDef, Port, step_files

PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "batch_size": {"type": "integer", "minimum": 1, "default": 1000,
                       "title": "Rows per mini-batch"},
        "workers": {"type": "integer", "minimum": 1, "maximum": 256, "default": 2,
                    "title": "Worker processes",
                    "description": "Processes that score batches at the same time."},
        "retries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1,
                    "title": "Retries per batch",
                    "description": "How often a failed batch is tried again."},
        "max_failed_batches": {
            "type": "integer", "minimum": 0, "default": 0, "title": "Failed batches allowed",
            "description": "The step fails when more batches than this fail after their "
                           "retries; the rows of an allowed failed batch get no prediction.",
        },
        "keep_columns": {
            "type": "array", "items": {"type": "string", "minLength": 1}, "default": [],
            "title": "Columns to keep",
            "description": "Input columns copied into the predictions, e.g. an id.",
        },
        "prediction_column": {"type": "string", "minLength": 1, "default": "prediction",
                              "title": "Prediction column"},
    },
}

COMPONENT = ComponentDef(
    name="parallel-run",
    version=1,
    title="Parallel batch scoring",
    category="Machine learning",
    description="Score a large table with a model in mini-batches over several processes, "
                "with per-batch retries and an error threshold; predictions keep the input's "
                "row order.",
    inputs=(Port("model", "model", description="From train-sklearn or automl"),
            Port("data", "table", description="Rows to score: the model's feature columns")),
    outputs=(Port("predictions", "table",
                  description="predictions.csv: row, kept columns, prediction"),),
    params_schema=PARAMS_SCHEMA,
    files=step_files("parallel_run.py", PARAMS_SCHEMA),
)
