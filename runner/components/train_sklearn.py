"""`train-sklearn`: train a chosen scikit-learn estimator with given hyperparameters."""

from runner.components import ComponentDef, Port, step_files

# Kept in step with ESTIMATORS in steps/steplib.py (a test checks that they agree).
ESTIMATOR_NAMES = (
    "linear_regression", "ridge", "lasso", "elastic_net", "logistic_regression",
    "decision_tree", "random_forest", "extra_trees", "gradient_boosting",
    "hist_gradient_boosting", "knn", "svc", "svr",
)

TASK_SCHEMA = {
    "type": "string", "enum": ["auto", "classification", "regression"], "default": "auto",
    "title": "Task",
    "description": "auto: classification for a text or integer target, else regression.",
}

PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["estimator"],
    "properties": {
        "estimator": {
            "type": "string", "enum": list(ESTIMATOR_NAMES), "default": "random_forest",
            "title": "Estimator",
            "description": "The scikit-learn estimator; the task picks the classifier or the "
                           "regressor where there are both. Linear models, SVMs and k-NN get "
                           "their features standardized first.",
        },
        "task": TASK_SCHEMA,
        "target_column": {"type": "string", "minLength": 1, "default": "target",
                          "title": "Target column", "description": "The column to predict."},
        "feature_columns": {
            "type": "array", "items": {"type": "string", "minLength": 1}, "default": [],
            "title": "Feature columns",
            "description": "Columns to learn from (numbers); empty: every other column.",
        },
        "hyperparameters": {
            "type": "object", "default": {}, "title": "Hyperparameters",
            "description": "Keyword arguments of the estimator, e.g. {\"n_estimators\": 200, "
                           "\"max_depth\": 8} for random_forest.",
        },
    },
}

COMPONENT = ComponentDef(
    name="train-sklearn",
    version=1,
    title="Train (scikit-learn)",
    category="Machine learning",
    description="Train a scikit-learn estimator on a table with a target column.",
    inputs=(Port("data", "table", description="Training rows: features and the target"),),
    outputs=(Port("model", "model", description="model.joblib and settings.json"),),
    params_schema=PARAMS_SCHEMA,
    files=step_files("train_sklearn.py", PARAMS_SCHEMA),
)
