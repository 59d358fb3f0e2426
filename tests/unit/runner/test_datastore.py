"""Artifacts: content digests, atomic publishing, materializing, on file:// and memory://."""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from pathlib import Path

import fsspec
import pytest

from runner.datastore import Datastore, DatastoreError, remove_tree, tree_digest


def make_tree(root: Path) -> Path:
    (root / "sub" / "empty").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.bin").write_bytes(b"\x00\x01\x02")
    tool = root / "run.sh"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "tree")


@pytest.fixture
def local_store(tmp_path: Path) -> Datastore:
    return Datastore(f"file://{tmp_path / 'store'}")


@pytest.fixture
def memory_store() -> Datastore:
    return Datastore(f"memory://store-{uuid.uuid4().hex}")


def all_files(store: Datastore) -> list[str]:
    return sorted(store.fs.find(store.root + "/", withdirs=True))


# --- tree_digest --------------------------------------------------------------------------


def test_the_digest_is_stable_and_counts_bytes(tree: Path, tmp_path: Path) -> None:
    digest, size = tree_digest(tree)
    assert digest.startswith("sha256:") and len(digest) == 7 + 64
    assert size == len("alpha") + 3 + len("#!/bin/sh\necho hi\n")
    assert tree_digest(make_tree(tmp_path / "copy")) == (digest, size)


@pytest.mark.parametrize("change", ["content", "name", "exec_bit", "empty_folder", "new_file"])
def test_any_change_to_the_tree_changes_the_digest(tree: Path, change: str) -> None:
    before, _ = tree_digest(tree)
    if change == "content":
        (tree / "a.txt").write_text("alphA")
    elif change == "name":
        (tree / "a.txt").rename(tree / "A.txt")
    elif change == "exec_bit":
        (tree / "run.sh").chmod(0o644)
    elif change == "empty_folder":
        (tree / "sub" / "empty").rmdir()
    else:
        (tree / "sub" / "empty" / "c").write_text("")
    assert tree_digest(tree)[0] != before


def test_times_and_read_permission_do_not_change_the_digest(tree: Path) -> None:
    before = tree_digest(tree)
    os.utime(tree / "a.txt", (1, 1))
    (tree / "a.txt").chmod(0o600)
    assert tree_digest(tree) == before


def test_a_file_and_a_folder_holding_that_file_differ(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "x").write_text("same")
    (tmp_path / "x").write_text("same")
    assert tree_digest(tmp_path / "x")[0] != tree_digest(tmp_path / "folder")[0]


def test_the_root_name_is_not_part_of_the_digest(tmp_path: Path) -> None:
    (tmp_path / "one").write_text("same")
    (tmp_path / "two").write_text("same")
    assert tree_digest(tmp_path / "one") == tree_digest(tmp_path / "two")


def test_symbolic_links_are_digested_as_their_content(tree: Path, tmp_path: Path) -> None:
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "a.txt").symlink_to(tree / "a.txt")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.txt").write_text("alpha")
    assert tree_digest(linked) == tree_digest(plain)


def test_a_dangling_link_or_a_loop_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "dangling").mkdir()
    (tmp_path / "dangling" / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(DatastoreError, match="dangling"):
        tree_digest(tmp_path / "dangling")
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop" / "again").symlink_to(tmp_path / "loop")
    with pytest.raises(DatastoreError, match="loop"):
        tree_digest(tmp_path / "loop")


# --- Local datastore ----------------------------------------------------------------------


def test_publish_moves_the_tree_into_place_read_only(local_store: Datastore, tree: Path) -> None:
    ref = local_store.publish(tree)
    digest, size = tree_digest(tree)
    hex_part = digest.removeprefix("sha256:")
    assert ref == {"digest": digest, "uri": local_store.artifact_uri(digest), "size": size}
    assert ref["uri"] == f"{local_store.url}/artifacts/{hex_part}"
    stored = Path(local_store.root) / "artifacts" / hex_part
    assert (stored / "sub" / "b.bin").read_bytes() == b"\x00\x01\x02"
    assert (stored / "sub" / "empty").is_dir()
    for path in [stored, *stored.rglob("*")]:
        assert not stat.S_IMODE(path.stat().st_mode) & 0o222, path
    assert tree_digest(stored) == (digest, size)
    assert local_store.exists(digest)
    assert os.listdir(Path(local_store.root) / "tmp") == []


def test_publishing_the_same_content_twice_keeps_the_first(
    local_store: Datastore, tree: Path, tmp_path: Path
) -> None:
    first = local_store.publish(tree)
    stored = Path(local_store.root) / "artifacts" / first["digest"].removeprefix("sha256:")
    inode = stored.stat().st_ino
    assert local_store.publish(make_tree(tmp_path / "again")) == first
    assert stored.stat().st_ino == inode
    assert os.listdir(Path(local_store.root) / "tmp") == []


def test_losing_the_rename_race_keeps_the_winner(local_store: Datastore, tree: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Another publisher finishes between our exists() check and our rename.
    monkeypatch.setattr(Datastore, "exists", lambda self, digest: False)
    first = local_store.publish(tree)
    assert local_store.publish(tree) == first
    assert os.listdir(Path(local_store.root) / "tmp") == []


def test_a_single_file_is_published_as_a_file(local_store: Datastore, tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    ref = local_store.publish(source)
    stored = Path(local_store.root) / "artifacts" / ref["digest"].removeprefix("sha256:")
    assert stored.read_bytes() == b"weights" and ref["size"] == 7


def test_a_failed_publish_leaves_no_temporary_files(
    local_store: Datastore, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_rename(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(OSError, match="disk full"):
        local_store.publish(tree)
    assert os.listdir(Path(local_store.root) / "tmp") == []
    assert not local_store.exists(tree_digest(tree)[0])


def test_materialize_links_on_a_local_store(local_store: Datastore, tree: Path,
                                            tmp_path: Path) -> None:
    ref = local_store.publish(tree)
    dest = tmp_path / "work" / "data"
    dest.parent.mkdir()
    local_store.materialize(ref, dest)
    assert dest.is_symlink()
    assert (dest / "a.txt").read_text() == "alpha"


def test_materialize_can_copy_writably(local_store: Datastore, tree: Path, tmp_path: Path) -> None:
    ref = local_store.publish(tree)
    dest = tmp_path / "code"
    local_store.materialize(ref, dest, link=False)
    assert not dest.is_symlink()
    (dest / "sub" / "new.txt").write_text("scripts may write next to themselves")
    (dest / "a.txt").write_text("changed")
    assert os.access(dest / "run.sh", os.X_OK)
    assert local_store.exists(ref["digest"])
    stored = Path(local_store.root) / "artifacts" / ref["digest"].removeprefix("sha256:")
    assert (stored / "a.txt").read_text() == "alpha"


def test_a_missing_artifact_cannot_be_materialized(local_store: Datastore, tmp_path: Path) -> None:
    ref = {"digest": "sha256:" + "0" * 64, "uri": local_store.artifact_uri("sha256:" + "0" * 64),
           "size": 0}
    with pytest.raises(DatastoreError, match="not in the datastore"):
        local_store.materialize(ref, tmp_path / "x")


def test_snapshots_use_the_same_machinery(local_store: Datastore, tree: Path,
                                          tmp_path: Path) -> None:
    ref = local_store.publish_snapshot(tree)
    assert ref == local_store.publish_snapshot(tree)
    assert ref["digest"] == tree_digest(tree)[0]
    with pytest.raises(DatastoreError, match="folder"):
        local_store.publish_snapshot(tree / "a.txt")


def test_containing_finds_the_store_from_an_artifact_uri(local_store: Datastore,
                                                         tree: Path) -> None:
    ref = local_store.publish(tree)
    assert Datastore.containing(ref).url == local_store.url
    with pytest.raises(DatastoreError):
        Datastore.containing({**ref, "uri": "file:///elsewhere/x"})


def test_a_bad_digest_is_refused(local_store: Datastore) -> None:
    with pytest.raises(DatastoreError, match="not an artifact digest"):
        local_store.artifact_uri("md5:abc")


# --- Remote (non-local fsspec) datastore --------------------------------------------------


def test_remote_publish_writes_files_then_the_marker(memory_store: Datastore,
                                                     tree: Path) -> None:
    ref = memory_store.publish(tree)
    hex_part = ref["digest"].removeprefix("sha256:")
    assert ref["uri"] == f"{memory_store.url}/artifacts/{hex_part}"
    base = f"{memory_store.root}/artifacts/{hex_part}"
    assert memory_store.fs.cat_file(f"{base}/sub/b.bin") == b"\x00\x01\x02"
    assert memory_store.fs.exists(f"{base}._complete")
    assert memory_store.exists(ref["digest"])
    assert not [p for p in all_files(memory_store) if "/tmp/" in p]


def test_remote_files_without_the_marker_do_not_exist(memory_store: Datastore,
                                                      tree: Path) -> None:
    digest, _ = tree_digest(tree)
    hex_part = digest.removeprefix("sha256:")
    memory_store.fs.pipe_file(f"{memory_store.root}/artifacts/{hex_part}/a.txt", b"alpha")
    assert not memory_store.exists(digest)


def test_a_failed_remote_upload_removes_its_temporary_files(
    memory_store: Datastore, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def flaky_copy(path1: str, path2: str, **kwargs: object) -> None:
        calls.append(path2)
        raise OSError("connection reset")

    monkeypatch.setattr(memory_store.fs, "copy", flaky_copy)
    with pytest.raises(OSError, match="connection reset"):
        memory_store.publish(tree)
    assert calls
    assert not memory_store.exists(tree_digest(tree)[0])
    assert not [p for p in all_files(memory_store) if "/tmp/" in p]


def test_remote_materialize_downloads_an_identical_tree(memory_store: Datastore, tree: Path,
                                                        tmp_path: Path) -> None:
    ref = memory_store.publish(tree)
    dest = tmp_path / "download"
    memory_store.materialize(ref, dest)
    assert not dest.is_symlink()
    assert (dest / "sub" / "empty").is_dir()  # object stores keep no folders; the marker does
    assert os.access(dest / "run.sh", os.X_OK)
    assert tree_digest(dest) == tree_digest(tree)


def test_remote_single_files_round_trip(memory_store: Datastore, tmp_path: Path) -> None:
    source = tmp_path / "one.txt"
    source.write_text("solo")
    ref = memory_store.publish(source)
    memory_store.materialize(ref, tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text() == "solo"
    assert tree_digest(tmp_path / "back.txt")[0] == ref["digest"]


def test_remote_publish_of_known_content_uploads_nothing(
    memory_store: Datastore, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory_store.publish(tree)

    def no_upload(*args: object, **kwargs: object) -> None:
        raise AssertionError("uploaded again")

    monkeypatch.setattr(memory_store.fs, "put_file", no_upload)
    assert memory_store.publish(tree)["digest"] == tree_digest(tree)[0]


def test_an_empty_folder_round_trips_remotely(memory_store: Datastore, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    ref = memory_store.publish(tmp_path / "empty")
    assert ref["size"] == 0 and memory_store.exists(ref["digest"])
    memory_store.materialize(ref, tmp_path / "back")
    assert list((tmp_path / "back").iterdir()) == []


def test_memory_urls_are_fsspec_urls() -> None:
    store = Datastore("memory://")
    assert store.artifact_uri("sha256:" + "a" * 64) == "memory:///artifacts/" + "a" * 64
    assert isinstance(store.fs, fsspec.AbstractFileSystem) and not store.is_local


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_remove_tree_gives_back_write_permission_a_folder_dropped(tmp_path: Path) -> None:
    # As root, permissions stop nothing: the removal runs as nobody, who owns the tree.
    base = Path(f"/tmp/remove-tree-{uuid.uuid4().hex}")
    base.mkdir(mode=0o755)
    try:
        tree = make_tree(base / "tree")
        for folder, dirs, files in os.walk(base):
            for name in [*dirs, *files, ""]:
                os.chown(os.path.join(folder, name), 65534, 65534)
        (tree / "sub").chmod(0o555)  # as a step's `chmod -w` would leave it
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                remove_tree(tree)
                code = 0
            finally:
                os._exit(code)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert not tree.exists()
    finally:
        shutil.rmtree(base)
