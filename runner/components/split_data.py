"""`split-data`: split a table into a train table and a test table."""

from runner.components import ComponentDef, Port, step_files

PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "test_fraction": {
            "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.2,
            "title": "Test fraction", "description": "Share of the rows that go to the test table.",
        },
        "seed": {"type": "integer", "default": 0, "title": "Random seed",
                 "description": "Seed of the shuffle; the same seed gives the same split."},
        "shuffle": {"type": "boolean", "default": True, "title": "Shuffle",
                    "description": "Shuffle before splitting; off keeps the last rows for test."},
        "stratify_column": {
            "type": "string", "default": "", "title": "Stratify by column",
            "description": "Keep this column's class shares equal in both tables (usually the "
                           "target of a classification); empty for none.",
        },
    },
}

COMPONENT = ComponentDef(
    name="split-data",
    version=1,
    title="Split data",
    category="Data",
    description="Split a table into train and test tables, optionally stratified by a column.",
    inputs=(Port("data", "table", description="The table to split (CSV)"),),
    outputs=(Port("train", "table", description="train.csv"),
             Port("test", "table", description="test.csv")),
    params_schema=PARAMS_SCHEMA,
    files=step_files("split_data.py", PARAMS_SCHEMA),
)
