"""The Python SDK: define, validate, run, publish and follow pipelines from code, over the
REST API. Django-free, like all of `runner`, so it installs on a laptop with no server parts.

    from runner.sdk import connect, Pipeline, PythonScriptStep, PipelineData

See docs/sdk.md for a worked example.
"""

from runner.sdk.client import ApiError, Client, connect
from runner.sdk.config import ConfigError
from runner.sdk.pipeline import Pipeline, PipelineInvalid, registered_components
from runner.sdk.publishing import Endpoint, register_component, trigger_endpoint
from runner.sdk.runs import Metrics, Run, RunTimeout, download_artifact
from runner.sdk.snapshots import SnapshotError, snapshot_digest, upload_snapshot
from runner.sdk.steps import (
    ComponentStep,
    PipelineData,
    PipelineError,
    PipelineParameter,
    PythonScriptStep,
)

__all__ = [
    "ApiError", "Client", "ComponentStep", "ConfigError", "Endpoint", "Metrics", "Pipeline",
    "PipelineData", "PipelineError", "PipelineInvalid", "PipelineParameter", "PythonScriptStep",
    "Run", "RunTimeout", "SnapshotError", "connect", "download_artifact", "register_component",
    "registered_components", "snapshot_digest", "trigger_endpoint", "upload_snapshot",
]
