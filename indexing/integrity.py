"""Checksums of an index version: written when a version is published, verified before a service loads it.

``checksums.json`` in a version directory lists the sha256 of every other file in it. A file that is missing,
truncated or changed after the build (a bad disk, a half copy, a stray editor) makes :func:`verify_checksums`
fail with the file's name, so that a service refuses the version instead of serving garbage. Writing the
checksums also flushes every file to disk (``fsync``), so a published version survives a power cut.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

from mlsearch.errors import IndexCorruptError, StorageError

CHECKSUMS_FILE = "checksums.json"
_BLOCK = 1 << 20


def _digest(path: Path, sync: bool = False) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
        if sync:
            os.fsync(handle.fileno())
    return digest.hexdigest()


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != CHECKSUMS_FILE)


def write_checksums(directory: Path) -> Path:
    """Flush every file of ``directory`` to disk and record its sha256 in ``checksums.json``.

    Returns:
        The checksums file.
    """
    files = {str(p.relative_to(directory)): _digest(p, sync=True) for p in _files(directory)}
    target = directory / CHECKSUMS_FILE
    with target.open("w") as handle:
        json.dump({"algorithm": "sha256", "files": files}, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    return target


def verify_checksums(directory: Path) -> int:
    """Check every file listed in ``directory``'s ``checksums.json`` (a version without one passes).

    Returns:
        How many files were checked.

    Raises:
        IndexCorruptError: The checksums file is unreadable, or a file is missing or differs (named).
    """
    path = directory / CHECKSUMS_FILE
    if not path.is_file():
        return 0
    try:
        files = dict(json.loads(path.read_text())["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexCorruptError(f"index version {directory.name}: unreadable {CHECKSUMS_FILE}: {exc}") from None
    for name, expected in files.items():
        file = directory / name
        if not file.is_file():
            raise IndexCorruptError(f"index version {directory.name} is damaged: {name} is missing")
        if _digest(file) != expected:
            size = file.stat().st_size
            raise IndexCorruptError(
                f"index version {directory.name} is damaged: {name} ({size} bytes) does not match the sha256 "
                "recorded when it was built (truncated or changed since)"
            )
    return len(files)


#: errno values that mean the disk (or quota, or file size limit) cannot take more, or it is read-only.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def storage_error(exc: BaseException, where: Path) -> StorageError | None:
    """The clear error for a write that failed because the disk is full or read-only; None for anything else."""
    if not isinstance(exc, OSError) or exc.errno not in DISK_ERRNOS:
        return None
    reason = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "it is read-only"
    return StorageError(
        f"cannot write the index under {where}: {reason} ({exc.strerror or exc}); the partial build was removed "
        "and the current index is untouched"
    )
