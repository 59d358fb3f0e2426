"""Data: datastores of a workspace, and reading artifacts out of them for downloads."""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from typing import IO

import fsspec
from django.db import transaction

from pipelines_ui.data.models import Artifact, Dataset, DatasetVersion, Datastore
from runner.datastore import Datastore as Store
from runner.datastore import DatastoreError, digest_hex

ZIP_SPOOL_BYTES = 16 * 1024 * 1024


def check_datastore_url(url: str) -> str:
    """ValueError unless `url` names an fsspec protocol (and an absolute path for file://)."""
    protocol, sep, rest = url.partition("://")
    if not sep or protocol not in fsspec.available_protocols():
        raise ValueError("must be an fsspec URL such as file:///srv/data or s3://bucket/prefix")
    if protocol == "file" and not rest.startswith("/"):
        raise ValueError("a file:// datastore needs an absolute path, like file:///srv/data")
    return url


def save_datastore(store: Datastore) -> Datastore:
    """Save; a new default datastore replaces the workspace's previous default."""
    with transaction.atomic():
        if store.is_default:
            Datastore.objects.filter(workspace=store.workspace_id, is_default=True).exclude(
                pk=store.pk).update(is_default=False)
        store.save()
    return store


def add_dataset_version(dataset: Dataset, *, artifact: Artifact, description: str = "",
                        user=None) -> DatasetVersion:
    with transaction.atomic():
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        latest = dataset.versions.order_by("-number").values_list("number", flat=True).first()
        return DatasetVersion.objects.create(dataset=dataset, number=(latest or 0) + 1,
                                             artifact=artifact, description=description,
                                             created_by=user)


@dataclass
class Download:
    file: IO[bytes]
    filename: str
    content_type: str


def open_artifact(artifact: Artifact, path: str = "") -> Download:
    """The artifact as a download: its one file, one file inside it (`path`), or a zip of it.

    Raises FileNotFoundError when the datastore no longer holds it or `path` is not in it.
    """
    try:
        store = Store.containing({"digest": artifact.digest, "uri": artifact.uri,
                                  "size": artifact.size})
        root = f"{store.root}/artifacts/{digest_hex(artifact.digest)}"
    except DatastoreError as exc:
        raise FileNotFoundError(str(exc)) from None
    if not store.exists(artifact.digest):
        raise FileNotFoundError(f"artifact {artifact.digest} is no longer in its datastore")
    name = digest_hex(artifact.digest)[:12]
    if path:
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts or not parts:
            raise FileNotFoundError(path)
        target = "/".join([root, *parts])
        if not store.fs.isfile(target):
            raise FileNotFoundError(path)
        return Download(store.fs.open(target, "rb"), parts[-1], "application/octet-stream")
    if store.fs.isfile(root):
        return Download(store.fs.open(root, "rb"), name, "application/octet-stream")
    return Download(_zip(store, root), f"{name}.zip", "application/zip")


def _zip(store: Store, root: str) -> IO[bytes]:
    """A zip of a folder artifact, spooled to disk past ZIP_SPOOL_BYTES."""
    spool = tempfile.SpooledTemporaryFile(max_size=ZIP_SPOOL_BYTES)
    with zipfile.ZipFile(spool, "w", zipfile.ZIP_DEFLATED) as archive:
        for found in sorted(store.fs.find(root, withdirs=False)):
            relative = os.path.relpath(found, root) if store.is_local else found[len(root) + 1:]
            if relative.endswith("._complete"):
                continue
            with store.fs.open(found, "rb") as source, archive.open(relative, "w") as target:
                while chunk := source.read(1024 * 1024):
                    target.write(chunk)
    spool.seek(0)
    return spool
