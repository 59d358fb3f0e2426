"""`automl`: search estimators and hyperparameters by cross-validation within a time budget."""

from runner.components import ComponentDef, Port, step_files
from runner.components.train_sklearn import ESTIMATOR_NAMES, TASK_SCHEMA

METRICS = ("auto", "accuracy", "f1", "roc_auc", "r2", "rmse", "mae")

PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "target_column": {"type": "string", "minLength": 1, "default": "target",
                          "title": "Target column", "description": "The column to predict."},
        "task": TASK_SCHEMA,
        "metric": {
            "type": "string", "enum": list(METRICS), "default": "auto",
            "title": "Metric to optimise",
            "description": "accuracy, f1 or roc_auc for classification; r2, rmse or mae for "
                           "regression. auto: accuracy or r2.",
        },
        "time_budget_s": {
            "type": "number", "minimum": 1, "maximum": 86400, "default": 60,
            "title": "Time budget (s)",
            "description": "No trial starts once it would end past the budget; at least one "
                           "trial runs.",
        },
        "max_trials": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 50,
                       "title": "Trials at most"},
        "cv_folds": {"type": "integer", "minimum": 2, "maximum": 20, "default": 3,
                     "title": "Cross-validation folds"},
        "estimators": {
            "type": "array", "items": {"type": "string", "enum": list(ESTIMATOR_NAMES)},
            "uniqueItems": True, "default": [], "title": "Estimators to try",
            "description": "Empty: every estimator that suits the task.",
        },
        "seed": {"type": "integer", "default": 0, "title": "Random seed"},
    },
}

COMPONENT = ComponentDef(
    name="automl",
    version=1,
    title="AutoML",
    category="Machine learning",
    description="Random search over scikit-learn estimators and their hyperparameters, scored "
                "by cross-validation within a time budget; outputs the best model refitted on "
                "all rows.",
    inputs=(Port("data", "table", description="Training rows: features and the target"),),
    outputs=(Port("model", "model", description="The best model: model.joblib, settings.json"),
             Port("leaderboard", "table", description="leaderboard.csv: every trial, best first"),
             Port("settings", "json", description="settings.json: the chosen settings")),
    params_schema=PARAMS_SCHEMA,
    files=step_files("automl.py", PARAMS_SCHEMA),
)
