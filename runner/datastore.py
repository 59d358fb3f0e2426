"""Artifacts in a datastore: content-addressed, immutable file trees behind an fsspec URL.

Layout under the datastore URL:

    artifacts/<hex>            the tree (a folder, or a single file for a file artifact)
    artifacts/<hex>._complete  remote stores only: the tree's manifest, written last
    tmp/<uuid>                 a publish in progress; removed on success and on failure

A local store (`file://`) makes an artifact visible with one atomic rename, so its presence is its
completeness. Object stores have no rename: there the files are uploaded under `tmp/`, copied into
place server-side, and the `_complete` manifest is written last; without it the artifact does not
exist. The manifest also keeps what object stores lose: empty folders and executable bits.

Symbolic links are never stored: a link is published as the file or folder it points to, and
only if that lies inside the tree being published or a folder the caller names (a step's inputs).
A link anywhere else, a dangling link and a link loop fail the publish, naming the link.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from runner.messages import ArtifactRef

_DIGEST_RE = re.compile(r"^sha256:([0-9a-f]{64})$")
_CHUNK = 1024 * 1024
_MARKER_SUFFIX = "._complete"
_MANIFEST_FORMAT = 1


class DatastoreError(Exception):
    """An artifact could not be published, found or materialized; the text says which and why."""


class LinkOutside(DatastoreError):
    """A symbolic link in a tree being published leads out of the places it may lead to."""

    def __init__(self, link: str, target: str) -> None:
        super().__init__(f"{link} is a link to {target}, outside the folder being published")
        self.link = link  # the link's path, from the tree's own name: "model/passwd"
        self.target = target  # what the link says, and where that is when it is relative


# --- Digests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """What a tree holds: its kind and every entry, enough to digest, copy or rebuild it."""

    kind: str  # "file" or "dir"
    entries: tuple[dict[str, Any], ...]  # sorted by path; the root file of a file artifact is ""
    # Where each file of a scanned tree is read from (links resolved); not part of the digest.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def size(self) -> int:
        return sum(entry.get("size", 0) for entry in self.entries)

    def to_json(self) -> str:
        body = {"format": _MANIFEST_FORMAT, "kind": self.kind, "entries": list(self.entries)}
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        body = json.loads(text)
        return cls(kind=body["kind"], entries=tuple(body["entries"]))


def tree_digest(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Return the content digest ("sha256:<hex>") and total size in bytes of a file or folder.

    The digest covers the kind (file or folder), each relative path, each file's content and
    executable bit, and empty folders; not the root's own name, times or other permissions.
    Symbolic links are followed, so a linked input copied into an output is digested as content.
    """
    manifest = scan(path)
    return manifest.digest, manifest.size


def scan(path: str | os.PathLike[str], *,
         links_within: Sequence[str] | None = None) -> Manifest:
    """Read a local file or folder into a Manifest (hashing every file), following links.

    With `links_within` None a link may lead anywhere. Otherwise each link, `path` itself
    included, must lead inside `path` or inside one of the `links_within` folders (real paths,
    taken as given), else LinkOutside; a dangling link or a loop is a DatastoreError.
    """
    root = Path(os.path.abspath(path))
    # The tree's own place, its parent resolved, is where links inside it may always lead.
    home = os.path.join(os.path.realpath(root.parent), root.name)
    allowed = None if links_within is None else (home, *links_within)
    walker = _Walker(root.name, allowed)
    if not os.path.lexists(home):
        raise DatastoreError(f"{root} does not exist")
    real = walker.follow(home, "")
    mode = os.lstat(real).st_mode
    if stat.S_ISREG(mode):
        return Manifest(kind="file", entries=(_file_entry(Path(real), ""),),
                        sources={"": real})
    if not stat.S_ISDIR(mode):
        raise DatastoreError(f"{root} is neither a regular file nor a folder")
    walker.walk(real)
    entries = sorted(walker.entries, key=lambda entry: entry["path"])
    return Manifest(kind="dir", entries=tuple(entries), sources=walker.sources)


class _Walker:
    """Walks a tree by real paths, so that no entry is read before its link was checked."""

    def __init__(self, name: str, allowed: tuple[str, ...] | None) -> None:
        self.name = name
        self.allowed = allowed
        self.entries: list[dict[str, Any]] = []
        self.sources: dict[str, str] = {}

    def shown(self, rel: str) -> str:
        return f"{self.name}/{rel}" if rel else self.name

    def follow(self, path: str, rel: str) -> str:
        """The real path of `path`: itself unless it is a link, which must lead somewhere
        allowed. `path`'s folder must be a real path already."""
        if not os.path.islink(path):
            return path
        target = os.readlink(path)
        try:
            real = os.path.realpath(path, strict=True)
        except OSError as exc:
            raise self._unfollowable(rel, target, exc) from None
        if self.allowed is not None and not any(_inside(real, f) for f in self.allowed):
            shown = target if os.path.isabs(target) else f"{target} ({real})"
            raise LinkOutside(self.shown(rel), shown)
        return real

    def _unfollowable(self, rel: str, target: str, exc: OSError) -> DatastoreError:
        if isinstance(exc, FileNotFoundError):
            return DatastoreError(f"{self.shown(rel)} is a dangling symbolic link to {target}")
        if exc.errno == errno.ELOOP:
            return DatastoreError(f"{self.shown(rel)} is a symbolic link loop ({target})")
        return DatastoreError(f"cannot follow the link {self.shown(rel)} to {target}: "
                              f"{exc.strerror}")

    def walk(self, top: str) -> None:
        # Each stack item carries the real paths of its ancestors, to refuse symlink loops.
        stack: list[tuple[str, str, frozenset[str]]] = [(top, "", frozenset({top}))]
        while stack:
            folder, prefix, ancestors = stack.pop()
            for name in sorted(os.listdir(folder)):
                rel = prefix + name
                real = self.follow(os.path.join(folder, name), rel)
                if self._add(real, rel, ancestors):
                    stack.append((real, rel + "/", ancestors | {real}))

    def _add(self, real: str, rel: str, ancestors: frozenset[str]) -> bool:
        """Record one entry; whether it is a folder to walk into."""
        mode = os.lstat(real).st_mode  # `real` is resolved: lstat sees what a link led to
        if stat.S_ISDIR(mode):
            if real in ancestors:
                raise DatastoreError(f"symbolic link loop at {self.shown(rel)}")
            self.entries.append({"path": rel, "type": "dir"})
            return True
        if not stat.S_ISREG(mode):
            raise DatastoreError(f"{self.shown(rel)} is neither a regular file nor a folder")
        self.entries.append(_file_entry(Path(real), rel))
        self.sources[rel] = real
        return False


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _file_entry(path: Path, rel: str) -> dict[str, Any]:
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    executable = bool(path.stat().st_mode & stat.S_IXUSR)
    return {"path": rel, "type": "file", "exec": executable, "sha256": sha.hexdigest(),
            "size": size}


def digest_hex(digest: str) -> str:
    """Return the hex part of a "sha256:<hex>" digest, or raise DatastoreError."""
    match = _DIGEST_RE.match(digest)
    if match is None:
        raise DatastoreError(f"not an artifact digest: {digest!r}")
    return match.group(1)


# --- The datastore ------------------------------------------------------------------------


class Datastore:
    """A datastore at an fsspec URL: `file:///abs/path` on one machine, `s3://bucket/prefix` etc."""

    def __init__(self, url: str) -> None:
        # Keep "memory://" intact; only a path's trailing slash goes.
        self.url = url if url.endswith("://") else url.rstrip("/")
        self.fs, root = fsspec.core.url_to_fs(self.url)
        self.root = root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def __repr__(self) -> str:
        return f"Datastore({self.url!r})"

    @classmethod
    def containing(cls, ref: ArtifactRef) -> Datastore:
        """Return the datastore that holds `ref`, read from its uri (".../artifacts/<hex>")."""
        suffix = f"/artifacts/{digest_hex(ref['digest'])}"
        if not ref["uri"].endswith(suffix):
            raise DatastoreError(f"artifact uri {ref['uri']!r} does not end with {suffix!r}")
        return cls(ref["uri"][: -len(suffix)])

    def artifact_uri(self, digest: str) -> str:
        """The URL where the artifact with this digest lives."""
        return f"{self.url}/artifacts/{digest_hex(digest)}"

    def _path(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    def _artifact_path(self, digest: str) -> str:
        return self._path("artifacts", digest_hex(digest))

    def exists(self, digest: str) -> bool:
        """Whether a complete artifact with this digest is in the datastore."""
        if self.is_local:
            return os.path.lexists(self._artifact_path(digest))
        return bool(self.fs.exists(self._artifact_path(digest) + _MARKER_SUFFIX))

    def publish(self, local_path: str | os.PathLike[str], *,
                links_within: Sequence[str] = ()) -> ArtifactRef:
        """Store a local file or folder as an immutable artifact and return its reference.

        Publishing content that is already there stores nothing new and returns the same ref.
        A symbolic link is stored as the file or folder it points to, which must be inside
        `local_path` or one of the `links_within` folders (real paths): else LinkOutside.
        """
        manifest = scan(local_path, links_within=links_within)
        digest = manifest.digest
        ref = ArtifactRef(digest=digest, uri=self.artifact_uri(digest), size=manifest.size)
        if self.exists(digest):
            return ref
        if self.is_local:
            self._publish_local(manifest)
        else:
            self._publish_remote(manifest)
        return ref

    def publish_snapshot(self, folder: str | os.PathLike[str]) -> ArtifactRef:
        """Store a source folder (a step's code) once; the same content reuses the same artifact."""
        if not Path(folder).is_dir():
            raise DatastoreError(f"a source snapshot must be a folder: {folder}")
        return self.publish(folder)

    def local_artifact_path(self, digest: str) -> str:
        """Where the artifact's tree is on this machine; a local datastore's only."""
        if not self.is_local:
            raise DatastoreError(f"the datastore {self.url} is not on this machine")
        return self._artifact_path(digest)

    def _publish_local(self, manifest: Manifest) -> None:
        final = self._artifact_path(manifest.digest)
        os.makedirs(self._path("artifacts"), exist_ok=True)
        os.makedirs(self._path("tmp"), exist_ok=True)
        temp = self._path("tmp", uuid.uuid4().hex)
        try:
            # From the scanned entries, not the tree: only what was checked is copied.
            if manifest.kind == "dir":
                os.mkdir(temp)
            for entry in manifest.entries:
                target = _join(temp, entry["path"])
                if entry["type"] == "dir":
                    os.mkdir(target)  # sorted by path: a folder comes before what it holds
                else:
                    _copy_file(manifest.sources[entry["path"]], target)
            # Sub-folders and files now; the top folder after the rename, which needs it writable.
            _make_read_only(temp, include_top=manifest.kind == "file")
            _rename_into_place(temp, final)
            _make_read_only(final, include_top=True)
        finally:
            if os.path.lexists(temp):
                remove_tree(temp)

    def _publish_remote(self, manifest: Manifest) -> None:
        final = self._artifact_path(manifest.digest)
        temp = self._path("tmp", uuid.uuid4().hex)
        try:
            for rel in _file_paths(manifest):
                with _open_source(manifest.sources[rel]) as source, \
                        self.fs.open(_join(temp, rel), "wb") as upload:
                    shutil.copyfileobj(source, upload, _CHUNK)
            # Server-side copies: concurrent publishers of one digest write identical bytes, and
            # each one's failure removes only its own temporary upload.
            for rel in _file_paths(manifest):
                self.fs.copy(_join(temp, rel), _join(final, rel))
            self.fs.pipe_file(final + _MARKER_SUFFIX, manifest.to_json().encode())
        finally:
            if self.fs.exists(temp):
                self.fs.rm(temp, recursive=True)

    def materialize(self, ref: ArtifactRef, dest: str | os.PathLike[str], *,
                    link: bool = True) -> None:
        """Make the artifact available at `dest` (which must not exist yet).

        On a local datastore `dest` becomes a symbolic link to the read-only artifact, unless
        `link` is False; elsewhere, and with `link=False`, the tree is copied and writable.
        """
        digest = ref["digest"]
        if not self.exists(digest):
            raise DatastoreError(f"artifact {digest} is not in the datastore {self.url}")
        source = self._artifact_path(digest)
        if self.is_local and link:
            os.symlink(source, dest)
        elif self.is_local:
            _copy_writable(source, Path(dest))
        else:
            self._download(source, Path(dest))

    def _download(self, source: str, dest: Path) -> None:
        manifest = Manifest.from_json(self.fs.cat_file(source + _MARKER_SUFFIX).decode())
        if manifest.kind == "dir":
            dest.mkdir()
        for entry in manifest.entries:
            target = _download_target(dest, manifest, entry["path"])
            if entry["type"] == "dir":
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(_join(source, entry["path"]), str(target))
            if entry["exec"]:
                mode = target.stat().st_mode
                target.chmod(mode | ((mode & 0o444) >> 2))


# --- File-system helpers -------------------------------------------------------------------


def _join(base: str, rel: str) -> str:
    return f"{base}/{rel}" if rel else base


def _download_target(dest: Path, manifest: Manifest, rel: str) -> Path:
    """Where an entry of a downloaded manifest goes: inside `dest`, whatever the manifest says
    (anyone who can write to the object store can write a manifest)."""
    if rel == "" and manifest.kind == "file":
        return dest
    parts = PurePosixPath(rel).parts
    if not rel or rel.startswith("/") or any(part in (".", "..") for part in parts) \
            or len(parts) != rel.count("/") + 1:
        raise DatastoreError(f"the artifact's manifest holds an unsafe path {rel!r}")
    return dest.joinpath(*parts)


def _open_source(path: str) -> IO[bytes]:
    # O_NOFOLLOW: a file that became a link after it was scanned is refused, not followed.
    return open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")


def _copy_file(source: str, dest: str) -> None:
    with _open_source(source) as reader, open(dest, "xb") as writer:
        shutil.copyfileobj(reader, writer, _CHUNK)
        os.chmod(dest, stat.S_IMODE(os.fstat(reader.fileno()).st_mode))


def _file_paths(manifest: Manifest) -> list[str]:
    return [entry["path"] for entry in manifest.entries if entry["type"] == "file"]


def _rename_into_place(temp: str, final: str) -> None:
    try:
        os.rename(temp, final)
    except OSError:
        # Another publisher of the same content won the race: theirs is identical, keep it.
        if not os.path.lexists(final):
            raise


def _make_read_only(path: str, *, include_top: bool) -> None:
    """Drop write permission below `path` (and on it with include_top): artifacts are immutable."""
    for folder, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            _drop_write(os.path.join(folder, name))
    if include_top:
        _drop_write(path)


def _drop_write(path: str) -> None:
    mode = os.lstat(path).st_mode
    if not stat.S_ISLNK(mode):
        os.chmod(path, stat.S_IMODE(mode) & ~0o222)


def _copy_writable(source: str, dest: Path) -> None:
    if os.path.isdir(source):
        shutil.copytree(source, dest, symlinks=False)
        for folder, dirs, files in os.walk(dest):
            for name in [*dirs, *files]:
                _add_owner_write(os.path.join(folder, name))
    else:
        shutil.copy2(source, dest)
    _add_owner_write(str(dest))


def _add_owner_write(path: str) -> None:
    mode = os.lstat(path).st_mode
    if not stat.S_ISLNK(mode):
        os.chmod(path, stat.S_IMODE(mode) | stat.S_IWUSR)


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Delete a file or folder even where write permission was dropped; never follows links."""
    path = os.fspath(path)
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    try:
        shutil.rmtree(path)
    except PermissionError:  # a read-only folder inside (an artifact, a step's chmod)
        _add_owner_write(path)
        for folder, dirs, _files in os.walk(path):
            for name in dirs:
                _add_owner_write(os.path.join(folder, name))
        shutil.rmtree(path)
