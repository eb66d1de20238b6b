"""Checksums of an index version: written when a version is published, verified before a service loads it.

``checksums.json`` in a version directory lists the sha256 of every other file in it. A file that is missing,
truncated or changed after the build (a bad disk, a half copy, a stray editor) makes :func:`verify_checksums`
fail with the file's name, so that a service refuses the version instead of serving garbage. Writing the
checksums also flushes every file to disk (``fsync``), so a published version survives a power cut.

A version that hard-links files of the previous one (an update's refit) takes their sums from the previous
version's list instead of reading them again. This process remembers each file it hashed by inode, size and
modification time; :func:`verify_checksums` trusts such a file (and reads every other file), so a service that
reloads the version its own updater just published does not hash hundreds of megabytes a second time. A file
changed after it was hashed has another size or modification time and is read again.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlsearch.errors import IndexCorruptError, StorageError

CHECKSUMS_FILE = "checksums.json"
_BLOCK = 1 << 20
_KNOWN_LIMIT = 4096
_known: dict[tuple[int, int], tuple[int, int, str]] = {}  # (device, inode) -> (size, mtime_ns, sha256)
_known_lock = threading.Lock()


def _identity(path: Path) -> tuple[tuple[int, int], tuple[int, int]]:
    info = path.stat()
    return (info.st_dev, info.st_ino), (info.st_size, info.st_mtime_ns)


def _remember(path: Path, digest: str) -> None:
    key, (size, mtime) = _identity(path)
    with _known_lock:
        if len(_known) >= _KNOWN_LIMIT:
            _known.clear()
        _known[key] = (size, mtime, digest)


def _recalled(path: Path) -> str | None:
    """The sha256 this process computed for ``path``, if the file has kept its size and modification time."""
    key, (size, mtime) = _identity(path)
    with _known_lock:
        known = _known.get(key)
    return known[2] if known is not None and known[:2] == (size, mtime) else None


def _digest(path: Path, sync: bool = False) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
        if sync:
            os.fsync(handle.fileno())
    _remember(path, digest.hexdigest())
    return digest.hexdigest()


def _recorded(directory: Path) -> dict[str, str]:
    """The sums listed in a version's checksums file ({} when it has none or it is unreadable)."""
    try:
        return {str(k): str(v) for k, v in json.loads((directory / CHECKSUMS_FILE).read_text())["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != CHECKSUMS_FILE)


def write_checksums(directory: Path, previous: Path | None = None) -> Path:
    """Flush every file of ``directory`` to disk and record its sha256 in ``checksums.json``.

    Args:
        directory: The version to record.
        previous: A version whose files ``directory`` may hard-link: a file that is the very same file there
            (same inode) takes the sum recorded in its list, unread (it was flushed when that version was).

    Returns:
        The checksums file.
    """
    recorded = _recorded(previous) if previous is not None else {}
    files: dict[str, str] = {}
    unread: list[Path] = []
    for path in _files(directory):
        name = str(path.relative_to(directory))
        twin = previous / name if previous is not None else None
        if name in recorded and twin is not None and twin.is_file() and os.path.samefile(path, twin):
            files[name] = recorded[name]
        else:
            unread.append(path)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # sha256 releases the GIL
        for path, digest in zip(unread, pool.map(lambda p: _digest(p, sync=True), unread), strict=True):
            files[str(path.relative_to(directory))] = digest
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
        if _recalled(file) != expected and _digest(file) != expected:
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
