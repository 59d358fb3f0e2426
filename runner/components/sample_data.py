"""`sample-data`: a table from a data set that ships inside scikit-learn (no download).

A source for examples and tests: diabetes (regression), breast_cancer and iris and wine
(classification). The features keep scikit-learn's names; the label is the column "target".
"""

from runner.components import ComponentDef, Port, step_files

DATASETS = ("diabetes", "breast_cancer", "iris", "wine")

PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "dataset": {
            "type": "string", "enum": list(DATASETS), "default": "diabetes", "title": "Data set",
            "description": "diabetes: regression, 442 rows. breast_cancer: binary "
                           "classification, 569 rows. iris: 3 classes, 150 rows. wine: 3 "
                           "classes, 178 rows.",
        },
        "max_rows": {
            "type": "integer", "minimum": 0, "default": 0, "title": "Rows at most",
            "description": "Keep a random sample of this many rows; 0 keeps them all.",
        },
        "seed": {
            "type": "integer", "default": 0, "title": "Random seed",
            "description": "Seed of the sample taken when rows are limited.",
        },
    },
}

COMPONENT = ComponentDef(
    name="sample-data",
    version=1,
    title="Sample data",
    category="Data",
    description="A table from a data set that ships inside scikit-learn; the label is the "
                "column \"target\".",
    outputs=(Port("data", "table", description="data.csv: the features and \"target\""),),
    params_schema=PARAMS_SCHEMA,
    files=step_files("sample_data.py", PARAMS_SCHEMA),
)
