"""data-transfer: copy a file or folder between fsspec URLs and the step's ports.

Each file's SHA-256 is computed while it is copied and again from the destination after the
copy; a difference fails the step.
"""

import hashlib
import os
import posixpath
import time
from typing import Any

import fsspec
import steplib
from fsspec.implementations.local import LocalFileSystem

from runner import context

CHUNK = 4 * 1024 * 1024


def open_url(url: str, options: dict[str, Any], what: str) -> tuple[Any, str]:
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError, TypeError) as exc:
        raise steplib.StepFailure(f"cannot open the {what} {url}: {exc}") from exc
    return fs, path.rstrip("/") or path


def source_files(fs: Any, root: str, shown: str) -> list[tuple[str, str]]:
    """(relative path, full path) of each file to copy; "" for a single file."""
    try:
        if fs.isfile(root):
            return [("", root)]
        if not fs.isdir(root):
            raise steplib.StepFailure(f"the source {shown} does not exist")
        found = sorted(fs.find(root))
    except (OSError, PermissionError) as exc:
        raise steplib.StepFailure(f"cannot read the source {shown}: {exc}") from exc
    if not found:
        raise steplib.StepFailure(f"the source {shown} is an empty folder")
    return [(posixpath.relpath(path, root), path) for path in found]


def sha256_of(fs: Any, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def copy(src_fs: Any, src: str, dst_fs: Any, dst: str) -> tuple[int, str]:
    """Copy one file, returning its size and SHA-256."""
    if isinstance(dst_fs, LocalFileSystem):
        os.makedirs(posixpath.dirname(dst), exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with src_fs.open(src, "rb") as reader, dst_fs.open(dst, "wb") as writer:
        for chunk in iter(lambda: reader.read(CHUNK), b""):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def open_source(params: dict[str, Any]) -> tuple[Any, str, str]:
    """The source's filesystem, its root path, and how sentences name it."""
    has_input = bool(os.environ.get(context.port_variable(context.INPUT_PREFIX, "source")))
    if params["source_url"] and has_input:
        raise steplib.StepFailure("give a source URL or connect the source input, not both")
    if params["source_url"]:
        shown = params["source_url"]
        src_fs, src_root = open_url(shown, params["source_options"], "source")
        return src_fs, src_root, shown
    if has_input:
        return LocalFileSystem(), str(context.input_path("source").resolve()), "input 'source'"
    raise steplib.StepFailure("nothing to copy: give a source URL or connect the source input")


def open_destination(params: dict[str, Any], single: bool) -> tuple[Any, str, str, bool]:
    """The destination's filesystem, its root path, how sentences name it, and whether the
    files go into it as a folder (else a single file is copied to that very path)."""
    target = params["destination_url"]
    if target:
        dst_fs, dst_root = open_url(target, params["destination_options"], "destination")
        return dst_fs, dst_root, target, not single or target.endswith("/")
    return (LocalFileSystem(), str(context.output_path("destination")),
            "output 'destination'", True)


def check_expected_sha256(expected: str, src_fs: Any, files: list[tuple[str, str]],
                          single: bool, shown: str) -> None:
    if not single:
        raise steplib.StepFailure("expected_sha256 checks a single file, but the source "
                                  f"{shown} is a folder")
    actual = sha256_of(src_fs, files[0][1])
    if actual != expected:
        raise steplib.StepFailure(f"the source {shown} has SHA-256 {actual}, not the "
                                  f"expected {expected}; nothing was copied")


def refuse_overwrite(dst_fs: Any, plan: list[tuple[str, str]]) -> None:
    existing = [dst for _, dst in plan if dst_fs.exists(dst)]
    if existing:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise steplib.StepFailure(f"the destination already holds {existing[0]}{more}; "
                                  "set overwrite to replace")


def copy_verified(src_fs: Any, dst_fs: Any, files: list[tuple[str, str]],
                  plan: list[tuple[str, str]], name: str) -> list[dict[str, Any]]:
    """Copy each file and read it back from the destination; one report entry a file."""
    report = []
    for (rel, src), (_, dst) in zip(files, plan, strict=True):
        size, digest = copy(src_fs, src, dst_fs, dst)
        dst_fs.invalidate_cache()
        copied = sha256_of(dst_fs, dst)
        if copied != digest:
            raise steplib.StepFailure(f"digest mismatch for {dst}: the source has SHA-256 "
                                      f"{digest}, the copy {copied}")
        report.append({"path": rel or name, "bytes": size, "sha256": digest})
        print(f"copied {rel or name} ({size} bytes, sha256 {digest})")
    return report


def main() -> None:
    params = steplib.params()
    src_fs, src_root, shown = open_source(params)
    files = source_files(src_fs, src_root, shown)
    single = files[0][0] == ""
    dst_fs, dst_root, target, into_folder = open_destination(params, single)
    name = posixpath.basename(src_root)
    plan = [(src, posixpath.join(dst_root, rel or name) if into_folder else dst_root)
            for rel, src in files]
    if params["expected_sha256"]:
        check_expected_sha256(params["expected_sha256"], src_fs, files, single, shown)
    if not params["overwrite"]:
        refuse_overwrite(dst_fs, plan)

    started = time.monotonic()
    report = copy_verified(src_fs, dst_fs, files, plan, name)
    seconds = time.monotonic() - started
    total = sum(entry["bytes"] for entry in report)
    steplib.write_json(context.output_path("report") / "transfer.json", {
        "source": shown, "destination": target, "files": report, "bytes": total,
        "seconds": round(seconds, 3), "verified": True,
    })
    context.log_metrics({"files": len(report), "bytes": total,
                         "megabytes_per_second": total / 1e6 / max(seconds, 1e-9)})
    print(f"copied {len(report)} files, {total} bytes, from {shown} to {target}; "
          "digests verified")


if __name__ == "__main__":
    steplib.run(main)
