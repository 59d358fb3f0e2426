"""Data: datastores of a workspace, and reading artifacts out of them for downloads."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from typing import IO

import fsspec
from django.conf import settings
from django.db import transaction

from pipelines_ui.data.models import Artifact, Dataset, DatasetVersion, Datastore
from runner.datastore import Datastore as Store
from runner.datastore import DatastoreError, digest_hex

ZIP_SPOOL_BYTES = 16 * 1024 * 1024
MAX_UPLOAD_ENTRIES = 20_000


def check_datastore_url(url: str) -> str:
    """ValueError unless `url` names an fsspec protocol (and an absolute path for file://)."""
    protocol, sep, rest = url.partition("://")
    if not sep or protocol not in fsspec.available_protocols():
        raise ValueError("must be an fsspec URL such as file:///srv/data or s3://bucket/prefix")
    if protocol == "file" and not rest.startswith("/"):
        raise ValueError("a file:// datastore needs an absolute path, like file:///srv/data")
    return url


def datastore_url(workspace_id: int) -> str:
    """Where the workspace's artifacts go: its default datastore, else the server's."""
    store = Datastore.objects.filter(workspace=workspace_id, is_default=True).first()
    return store.url if store else settings.DATASTORE_URL


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


# --- Uploads ----------------------------------------------------------------------------------


class UploadTooLarge(Exception):
    """The upload, or what it unpacks to, is over PIPELINES_MAX_UPLOAD_BYTES."""


class UploadInvalid(Exception):
    """The upload is not a tar archive of plain files and folders; the text says why."""


def upload_limit() -> int:
    return settings.PIPELINES_MAX_UPLOAD_BYTES


def store_snapshot(workspace, archive: IO[bytes], *, store_url: str) -> tuple[Artifact, bool]:
    """Unpack a tar archive of a folder and store it as a content-addressed artifact of the
    workspace: (artifact, created). The same folder always gives the same digest, so a step
    whose code did not change is still reused."""
    with tempfile.TemporaryDirectory(prefix="upload-") as scratch:
        tree = os.path.join(scratch, "tree")
        _unpack(archive, tree)
        try:
            ref = Store(store_url).publish_snapshot(tree)
        except DatastoreError as exc:
            raise UploadInvalid(str(exc)) from None
    # The slow part (unpack, publish) is done; the row is one short write.
    return Artifact.objects.get_or_create(workspace=workspace, digest=ref["digest"],
                                          defaults={"uri": ref["uri"], "size": ref["size"]})


def _unpack(archive: IO[bytes], dest: str) -> None:
    try:
        with tarfile.open(fileobj=archive, mode="r:*") as tar:
            members = _checked_members(tar)
            os.makedirs(dest)
            # The "data" filter refuses absolute paths, "..", devices and links out of the tree.
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise UploadInvalid(f"the body is not a readable tar archive: {exc}") from None


def _checked_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members, total = [], 0
    for member in tar:
        if not (member.isfile() or member.isdir()):
            raise UploadInvalid(f"{member.name!r} is a link or a special file; archive plain "
                                "files and folders only (tar --dereference)")
        parts = member.name.split("/")
        if member.name.startswith("/") or ".." in parts:
            raise UploadInvalid(f"{member.name!r} points outside the folder; archive paths "
                                "relative to it")
        total += member.size
        members.append(member)
        if total > upload_limit():
            raise UploadTooLarge(f"The archive unpacks to more than {upload_limit()} bytes "
                                 "(PIPELINES_MAX_UPLOAD_BYTES).")
        if len(members) > MAX_UPLOAD_ENTRIES:
            raise UploadInvalid(f"the archive holds more than {MAX_UPLOAD_ENTRIES} entries")
    if not any(member.isfile() for member in members):
        raise UploadInvalid("the archive holds no files")
    return members
