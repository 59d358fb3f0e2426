"""Where the SDK finds the server: arguments, then the environment, then the config file."""

import pytest

from runner.sdk import ConfigError
from runner.sdk.config import resolve


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in ("PIPELINES_URL", "PIPELINES_TOKEN", "PIPELINES_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIPELINES_CONFIG", str(tmp_path / "config.toml"))
    return tmp_path / "config.toml"


def test_arguments_then_environment_then_file(monkeypatch, clean_environment):
    clean_environment.write_text('url = "http://file:1/"\ntoken = "file-token"\nworkspace = 3\n')
    assert resolve() == resolve(None, None)
    found = resolve()
    assert (found.url, found.token, found.workspace) == ("http://file:1", "file-token", 3)
    monkeypatch.setenv("PIPELINES_TOKEN", "env-token")
    assert resolve().token == "env-token"
    assert resolve(url="https://arg", token="arg-token").url == "https://arg"


def test_a_missing_value_says_where_to_set_it(clean_environment):
    with pytest.raises(ConfigError) as missing:
        resolve(url="http://x")
    assert "no server token" in str(missing.value)
    assert "PIPELINES_TOKEN" in str(missing.value) and str(clean_environment) in str(
        missing.value)


@pytest.mark.parametrize("content, says", [
    ('url = "http://x"\ntoken = ', "is not valid TOML"),
    ('url = "ftp://x"\ntoken = "t"', "must start with http:// or https://"),
    ('url = "http://x"\ntoken = "t"\nworkspace = "team"', "must be a number"),
])
def test_a_bad_config_file_is_named(clean_environment, content, says):
    clean_environment.write_text(content)
    with pytest.raises(ConfigError, match=says):
        resolve()
