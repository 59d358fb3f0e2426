"""`python -m runner`: the SDK commands beside `worker`, which alone hides its secrets."""

import pytest

from runner import __main__ as entry
from runner import secrets
from runner.cli import _parameters
from runner.sdk import PipelineError


def test_parameters_are_json_else_text():
    assert _parameters(["n=3", "alpha=0.5", "name=churn", "flag=true", "list=[1,2]"]) == {
        "n": 3, "alpha": 0.5, "name": "churn", "flag": True, "list": [1, 2]}
    with pytest.raises(PipelineError, match="NAME=VALUE"):
        _parameters(["oops"])


def test_sdk_commands_do_not_reexec_and_explain_a_missing_server(monkeypatch, capsys, tmp_path):
    def refuse(argv):
        raise AssertionError("only the worker hides its secrets")

    monkeypatch.setattr(secrets, "reexec_without_secrets", refuse)
    for name in ("PIPELINES_URL", "PIPELINES_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIPELINES_CONFIG", str(tmp_path / "none.toml"))
    assert entry.main(["runs"]) == 2
    assert "set PIPELINES_URL and PIPELINES_TOKEN" in capsys.readouterr().err


def test_the_worker_command_still_parses(capsys):
    with pytest.raises(SystemExit) as shown:
        entry.main(["worker", "--help"])
    assert shown.value.code == 0 and "--target" in capsys.readouterr().out
