"""Previews of artifacts on the run page: the files in one, and the head of a text, CSV, JSON
or image file. Downloads of whole artifacts stay with the API (GET /api/artifacts/{digest}/).
"""

from __future__ import annotations

import csv
import io
import json
import mimetypes
from typing import IO, Any

from pipelines_ui.data.models import Artifact
from runner.datastore import Datastore, DatastoreError, digest_hex

PREVIEW_BYTES = 64 * 1024
MAX_FILES = 500
MAX_ROWS = 50
# Served inline on our origin, so only types a browser cannot run as a page (no SVG, no HTML).
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"}
TEXT_SUFFIXES = {".txt", ".log", ".md", ".py", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".sh",
                 ".tsv", ".xml", ".html"}


def _root(artifact: Artifact) -> tuple[Datastore, str]:
    try:
        store = Datastore.containing({"digest": artifact.digest, "uri": artifact.uri,
                                      "size": artifact.size})
    except DatastoreError:
        # Its message names the storage location, which only operators may see (S16).
        raise FileNotFoundError(_gone(artifact)) from None
    root = f"{store.root}/artifacts/{digest_hex(artifact.digest)}"
    if not store.fs.exists(root):
        raise FileNotFoundError(_gone(artifact))
    return store, root


def _gone(artifact: Artifact) -> str:
    return f"artifact {artifact.digest} is no longer in its datastore"


def list_files(artifact: Artifact) -> list[dict[str, Any]]:
    """The artifact's files as [{path, size}] (path "" for an artifact that is one file)."""
    store, root = _root(artifact)
    if store.fs.isfile(root):
        return [{"path": "", "size": store.fs.size(root)}]
    found = store.fs.find(root, withdirs=False, detail=True)
    files = []
    for name, info in sorted(found.items()):
        relative = name[len(root.rstrip("/")) + 1:] if name.startswith(root) else name
        if relative.endswith("._complete"):
            continue
        files.append({"path": relative, "size": info.get("size", 0)})
        if len(files) >= MAX_FILES:
            break
    return files


def _open(artifact: Artifact, path: str) -> IO[bytes]:
    store, root = _root(artifact)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise FileNotFoundError(path)
    target = "/".join([root, *parts])
    if not store.fs.isfile(target):
        raise FileNotFoundError(path or artifact.digest)
    return store.fs.open(target, "rb")


def kind_of(path: str) -> str:
    lowered = path.lower()
    guessed = mimetypes.guess_type(lowered)[0] or ""
    if guessed in IMAGE_TYPES:
        return "image"
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith((".json", ".jsonl")):
        return "json"
    if guessed.startswith("text/") or any(lowered.endswith(s) for s in TEXT_SUFFIXES):
        return "text"
    return "unknown"


def preview(artifact: Artifact, path: str) -> dict[str, Any]:
    """The head of one file: {path, kind, text?, rows?, truncated}. Unknown kinds are shown as
    text when the head decodes as UTF-8, else as binary (download only)."""
    kind = kind_of(path)
    result: dict[str, Any] = {"path": path, "kind": kind, "truncated": False}
    if kind == "image":
        return result
    with _open(artifact, path) as file:
        head = file.read(PREVIEW_BYTES + 1)
    result["truncated"] = len(head) > PREVIEW_BYTES
    head = head[:PREVIEW_BYTES]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        if not result["truncated"] or kind == "unknown":
            return {**result, "kind": "binary"}
        text = head.decode("utf-8", errors="ignore")  # a multi-byte character was cut
    if kind == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        if result["truncated"] and rows:
            rows = rows[:-1]  # the last row may be cut short
        result["truncated"] = result["truncated"] or len(rows) > MAX_ROWS + 1
        return {**result, "rows": rows[:MAX_ROWS + 1]}
    if kind == "json" and not result["truncated"]:
        try:
            text = json.dumps(json.loads(text), indent=2)
        except ValueError:
            pass  # JSON lines, or broken: shown as it is
    return {**result, "kind": "text" if kind == "unknown" else kind, "text": text}


def open_image(artifact: Artifact, path: str) -> tuple[IO[bytes], str]:
    """An image file of the artifact and its content type; FileNotFoundError for anything else."""
    content_type = mimetypes.guess_type(path.lower())[0] or ""
    if content_type not in IMAGE_TYPES:
        raise FileNotFoundError(f"{path} is not an image")
    return _open(artifact, path), content_type
