"""`data-transfer`: copy a file or folder between datastores (fsspec URLs), checking digests."""

from runner.components import ComponentDef, Port, step_files

PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "source_url": {
            "type": "string", "default": "", "title": "Source URL",
            "description": "A file or folder, e.g. s3://bucket/data/ or file:///srv/data.csv; "
                           "empty: the source input.",
        },
        "destination_url": {
            "type": "string", "default": "", "title": "Destination URL",
            "description": "Where the copy goes; a URL ending in / takes a file by its name. "
                           "Empty: the destination output.",
        },
        "overwrite": {"type": "boolean", "default": False, "title": "Overwrite",
                      "description": "Replace files that already exist at the destination."},
        "expected_sha256": {
            "type": "string", "pattern": "^([0-9a-f]{64})?$", "default": "",
            "title": "Expected SHA-256",
            "description": "The source file's known digest (hex); nothing is copied when it "
                           "differs.",
        },
        "source_options": {
            "type": "object", "default": {}, "title": "Source options",
            "description": "fsspec options for the source, e.g. {\"endpoint_url\": "
                           "\"http://minio:9000\"}. Credentials belong in the node's secrets "
                           "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), not here.",
        },
        "destination_options": {"type": "object", "default": {},
                                "title": "Destination options",
                                "description": "fsspec options for the destination."},
    },
}

COMPONENT = ComponentDef(
    name="data-transfer",
    version=1,
    title="Data transfer",
    category="Data",
    description="Copy a file or folder from a URL or the source input to a URL or the "
                "destination output (file://, s3://, ...), checking SHA-256 digests.",
    inputs=(Port("source", "any", optional=True,
                 description="What to copy, when no source URL is given"),),
    outputs=(Port("destination", "any",
                  description="The copy, when no destination URL is given"),
             Port("report", "json", description="transfer.json: files, sizes, digests")),
    params_schema=PARAMS_SCHEMA,
    files=step_files("data_transfer.py", PARAMS_SCHEMA),
)
