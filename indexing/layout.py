"""Index directory layout: versions side by side, and an atomic symlink swap between them.

``indexes/default`` is a symbolic link to ``indexes/.default.versions/<version>``. A build writes a new
version into ``<version>.tmp``, renames it into place, and then replaces the link with ``os.replace`` (an
atomic rename), so that a reader sees either the whole old index or the whole new one, and a build killed
at any moment leaves the previous index untouched.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
from collections.abc import Collection, Iterator
from pathlib import Path

from indexing.integrity import CHECKSUMS_FILE, storage_error, write_checksums
from indexing.manifest import MANIFEST_FILE

logger = logging.getLogger(__name__)
TMP_SUFFIX = ".tmp"


def versions_dir(index_dir: Path) -> Path:
    """The folder beside ``index_dir`` that holds its versions."""
    return index_dir.parent / f".{index_dir.name}.versions"


def current_version_dir(index_dir: Path) -> Path:
    """The directory that ``index_dir`` points to now (itself if it is not a link)."""
    return Path(os.path.realpath(index_dir))


@contextlib.contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Hold the index's build lock: full builds and document updates of one index run one at a time.

    An exclusive ``flock`` on ``<versions>/.lock``, so it serialises threads and processes alike; without it an
    update's removal of stale ``*.tmp`` folders deleted a running build's folder under it.
    """
    root = versions_dir(index_dir)
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class VersionLease:
    """A shared ``flock`` on a version directory held while a service serves it; :func:`prune` skips it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd: int | None = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        """Let the version be pruned again (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _in_use(path: Path) -> bool:
    """Whether some process holds a :class:`VersionLease` on ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def new_build_dir(index_dir: Path, version: str) -> Path:
    """Create and return the temporary directory in which a version is built."""
    root = versions_dir(index_dir)
    root.mkdir(parents=True, exist_ok=True)
    build_dir = root / f"{version}{TMP_SUFFIX}"
    build_dir.mkdir()
    return build_dir


def link_version_files(source: Path, target: Path, skip: Collection[str]) -> None:
    """Hard-link every file of version ``source`` into ``target``, but for the top-level names in ``skip``.

    Published versions are never written to, so two versions can share a file; a file system without hard
    links gets a copy.
    """
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if relative.parts[0] in skip:
            continue
        destination = target / relative
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, destination)
        except OSError:
            shutil.copy2(path, destination)


@contextlib.contextmanager
def derived_version(
    index_dir: Path, source: Path, version: str, replaced: Collection[str], keep: int
) -> Iterator[Path]:
    """A new version ``version`` made from version ``source``, published when the ``with`` block ends.

    Every file of ``source`` is hard-linked into the new version's build folder (which the block receives) but
    its checksums, its manifest and the top-level names in ``replaced``: the block writes those (the replaced
    backends and the manifest). On any failure the partial version is removed and the current one is
    untouched; a full or read-only disk raises :class:`~mlsearch.errors.StorageError`.
    """
    build_dir = new_build_dir(index_dir, version)
    try:
        link_version_files(source, build_dir, skip={*replaced, MANIFEST_FILE, CHECKSUMS_FILE})
        yield build_dir
        publish(index_dir, build_dir, keep=keep, previous=source)
    except BaseException as exc:
        shutil.rmtree(build_dir, ignore_errors=True)
        if (disk := storage_error(exc, index_dir)) is not None:
            raise disk from exc
        raise


def publish(index_dir: Path, build_dir: Path, keep: int, previous: Path | None = None) -> Path:
    """Record the build's checksums, move it into place and point ``index_dir`` at it atomically.

    Args:
        index_dir: The path users give (becomes or stays a symbolic link).
        build_dir: The finished ``<version>.tmp`` directory.
        keep: How many versions to keep on disk, the new one included.
        previous: The version whose files the build hard-linked (their sums are taken from its list).

    Returns:
        The published version directory.
    """
    final = build_dir.with_name(build_dir.name.removesuffix(TMP_SUFFIX))
    write_checksums(build_dir, previous)
    os.replace(build_dir, final)
    if index_dir.exists() and not index_dir.is_symlink():
        if (index_dir / MANIFEST_FILE).is_file() or not any(index_dir.iterdir()):
            legacy = versions_dir(index_dir) / f"0-legacy-{os.getpid()}"
            os.replace(index_dir, legacy)
        else:
            raise FileExistsError(f"{index_dir} exists and is not an mlsearch index; not replacing it")
    link_tmp = index_dir.with_name(f".{index_dir.name}.link{TMP_SUFFIX}")
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    os.symlink(os.path.relpath(final, index_dir.parent), link_tmp)
    os.replace(link_tmp, index_dir)
    prune(index_dir, keep)
    return final


def prune(index_dir: Path, keep: int) -> None:
    """Delete old versions beyond ``keep`` (never the current one, nor one a service still serves)."""
    root = versions_dir(index_dir)
    if not root.is_dir():
        return
    current = current_version_dir(index_dir)
    versions = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.endswith(TMP_SUFFIX)),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    survivors = [current] + [p for p in versions if p.resolve() != current][: max(0, keep - 1)]
    for path in versions:
        if path.resolve() not in {s.resolve() for s in survivors} and not _in_use(path):
            shutil.rmtree(path, ignore_errors=True)
            logger.info("removed old index version %s", path.name)


def remove_stale_builds(index_dir: Path, except_dir: Path | None = None) -> None:
    """Remove ``*.tmp`` build directories left by builds that were killed."""
    root = versions_dir(index_dir)
    if root.is_dir():
        for path in root.glob(f"*{TMP_SUFFIX}"):
            if path != except_dir:
                shutil.rmtree(path, ignore_errors=True)
