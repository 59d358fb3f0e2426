"""Where the SDK finds the server and its token: arguments, then the environment, then a file.

The file is TOML (`~/.config/pipelines/config.toml`, or the path in PIPELINES_CONFIG):

    url = "https://pipelines.example.com"
    token = "pk_..."
    workspace = 1        # optional: which workspace, when the token's user has several
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

URL_VAR, TOKEN_VAR, WORKSPACE_VAR, CONFIG_VAR = (
    "PIPELINES_URL", "PIPELINES_TOKEN", "PIPELINES_WORKSPACE", "PIPELINES_CONFIG")


class ConfigError(Exception):
    """The server URL or token is missing or malformed; the text says where to set it."""


@dataclass(frozen=True)
class Settings:
    url: str
    token: str
    workspace: int | None = None


def config_path() -> Path:
    if os.environ.get(CONFIG_VAR):
        return Path(os.environ[CONFIG_VAR])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "pipelines" / "config.toml"


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def resolve(url: str | None = None, token: str | None = None,
            workspace: int | None = None) -> Settings:
    """Each value from the first place that has it: argument, environment variable, file."""
    path = config_path()
    saved = _read_file(path)
    url = url or os.environ.get(URL_VAR) or saved.get("url")
    token = token or os.environ.get(TOKEN_VAR) or saved.get("token")
    if not url or not token:
        missing = " and ".join(n for n, v in (("url", url), ("token", token)) if not v)
        raise ConfigError(f"no server {missing}: pass them to connect(), set {URL_VAR} and "
                          f"{TOKEN_VAR}, or write them to {path}")
    raw_workspace = workspace or os.environ.get(WORKSPACE_VAR) or saved.get("workspace")
    try:
        chosen = int(raw_workspace) if raw_workspace else None
    except ValueError:
        raise ConfigError(f"the workspace must be a number (its id), not {raw_workspace!r}"
                          ) from None
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"the server URL must start with http:// or https://, not {url!r}")
    return Settings(url=url.rstrip("/"), token=str(token), workspace=chosen)
