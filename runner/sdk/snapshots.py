"""Source directories as content-addressed snapshots: the same files give the same digest, so
a step whose code did not change is reused; unchanged code is not uploaded twice."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path

from runner.datastore import tree_digest
from runner.sdk.client import Client

# Left out of every snapshot: caches that change when code runs, not when it is edited.
IGNORED = ("__pycache__", "*.pyc", ".git", ".ipynb_checkpoints", ".pytest_cache")


class SnapshotError(Exception):
    """A source directory could not be snapshotted; the text says which and why."""


def snapshot_digest(folder: str | Path) -> str:
    """The digest the server will give this folder (without uploading it)."""
    with tempfile.TemporaryDirectory(prefix="snapshot-") as scratch:
        return tree_digest(_clean_copy(folder, Path(scratch) / "tree"))[0]


def upload_snapshot(client: Client, folder: str | Path) -> str:
    """Store the folder in the client's workspace (unless it is there already); its digest."""
    with tempfile.TemporaryDirectory(prefix="snapshot-") as scratch:
        tree = _clean_copy(folder, Path(scratch) / "tree")
        digest = tree_digest(tree)[0]
        known = client.get("/api/artifacts/", workspace=client.workspace, digest=digest)
        if known["results"]:
            return digest
        archive = Path(scratch) / "source.tar.gz"
        _tar(tree, archive)
        with open(archive, "rb") as body:
            stored = client.request("POST", "/api/artifacts/", content=body,
                                    params={"workspace": client.workspace},
                                    headers={"Content-Type": "application/gzip"})
    if stored["digest"] != digest:
        raise SnapshotError(f"the server stored {folder} as {stored['digest']}, not {digest}: "
                            "did files change during the upload?")
    return digest


def _clean_copy(folder: str | Path, dest: Path) -> Path:
    source = Path(folder)
    if not source.is_dir():
        raise SnapshotError(f"source_directory {str(folder)!r} is not a folder")
    # Links are followed: the snapshot holds what the script would read.
    shutil.copytree(source, dest, symlinks=False, ignore=shutil.ignore_patterns(*IGNORED))
    if not any(path.is_file() for path in dest.rglob("*")):
        raise SnapshotError(f"source_directory {str(folder)!r} holds no files")
    return dest


def _tar(tree: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for child in sorted(tree.iterdir()):
            tar.add(child, arcname=child.name)
