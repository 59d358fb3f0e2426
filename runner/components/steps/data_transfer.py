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


def main() -> None:
    params = steplib.params()
    has_input = bool(os.environ.get(context.port_variable(context.INPUT_PREFIX, "source")))
    if params["source_url"] and has_input:
        raise steplib.StepFailure("give a source URL or connect the source input, not both")
    if params["source_url"]:
        shown = params["source_url"]
        src_fs, src_root = open_url(shown, params["source_options"], "source")
    elif has_input:
        shown = "input 'source'"
        src_fs, src_root = LocalFileSystem(), str(context.input_path("source").resolve())
    else:
        raise steplib.StepFailure("nothing to copy: give a source URL or connect the source "
                                  "input")
    files = source_files(src_fs, src_root, shown)
    single = files[0][0] == ""
    if params["destination_url"]:
        target = params["destination_url"]
        dst_fs, dst_root = open_url(target, params["destination_options"], "destination")
        into_folder = not single or target.endswith("/")
    else:
        target = "output 'destination'"
        dst_fs, dst_root = LocalFileSystem(), str(context.output_path("destination"))
        into_folder = True
    name = posixpath.basename(src_root)
    plan = [(src, posixpath.join(dst_root, rel or name) if into_folder else dst_root)
            for rel, src in files]

    expected = params["expected_sha256"]
    if expected:
        if not single:
            raise steplib.StepFailure("expected_sha256 checks a single file, but the source "
                                      f"{shown} is a folder")
        actual = sha256_of(src_fs, files[0][1])
        if actual != expected:
            raise steplib.StepFailure(f"the source {shown} has SHA-256 {actual}, not the "
                                      f"expected {expected}; nothing was copied")
    if not params["overwrite"]:
        existing = [dst for _, dst in plan if dst_fs.exists(dst)]
        if existing:
            more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
            raise steplib.StepFailure(f"the destination already holds {existing[0]}{more}; "
                                      "set overwrite to replace")

    started, report = time.monotonic(), []
    for (rel, src), (_, dst) in zip(files, plan, strict=True):
        size, digest = copy(src_fs, src, dst_fs, dst)
        dst_fs.invalidate_cache()
        copied = sha256_of(dst_fs, dst)
        if copied != digest:
            raise steplib.StepFailure(f"digest mismatch for {dst}: the source has SHA-256 "
                                      f"{digest}, the copy {copied}")
        report.append({"path": rel or name, "bytes": size, "sha256": digest})
        print(f"copied {rel or name} ({size} bytes, sha256 {digest})")
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
