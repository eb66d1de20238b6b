"""Follow a corpus folder: each poll turns added, changed and removed files into document writes.

A file is looked at again only when its size or modification time changed; its document is then loaded and
written through the :class:`~indexing.updates.DocumentUpdater`, which embeds only its new chunks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from indexing.documents import corpus_files, document_id_for
from indexing.loaders.dispatch import load_bytes, source_type_for
from indexing.updates import DocumentUpdater
from mlsearch.errors import DocumentError, DocumentNotFoundError

logger = logging.getLogger(__name__)
Snapshot = dict[Path, tuple[int, int]]


@dataclass
class PollResult:
    """What one poll found and wrote."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return bool(self.written or self.removed)


def snapshot(folder: Path) -> Snapshot:
    """``path → (size, mtime_ns)`` of every visible file under a folder."""
    out: Snapshot = {}
    for path in corpus_files(folder):
        try:
            stat = path.stat()
        except OSError:  # removed while we looked
            continue
        out[path] = (stat.st_size, stat.st_mtime_ns)
    return out


class FolderWatcher:
    """Compares a folder with its previous snapshot and writes the differences as documents.

    Args:
        folder: The corpus folder.
        updater: Where the writes go.
        initial: The snapshot the index already reflects (taken now by default).
    """

    def __init__(self, folder: Path, updater: DocumentUpdater, initial: Snapshot | None = None) -> None:
        self.folder = Path(folder)
        self.updater = updater
        self.previous = snapshot(self.folder) if initial is None else initial

    def poll(self) -> PollResult:
        """Write the files added or changed since the last poll and delete the documents of removed files."""
        current = snapshot(self.folder)
        result = PollResult()
        for path, stamp in sorted(current.items()):
            if self.previous.get(path) == stamp:
                continue
            doc_id = document_id_for(path, self.folder)
            try:
                data = path.read_bytes()
                if source_type_for(path.name, data[:2048]) is None:
                    continue
                loaded = load_bytes(data, str(path), doc_id)
            except (DocumentError, OSError) as exc:
                result.skipped.append((str(path), str(exc)))
                logger.warning("skipped %s: %s", path, exc)
                continue
            self.updater.put(loaded.document)
            result.written.append(doc_id)
        for path in sorted(set(self.previous) - set(current)):
            doc_id = document_id_for(path, self.folder)
            try:
                self.updater.delete(doc_id)
            except DocumentNotFoundError:
                continue
            result.removed.append(doc_id)
        self.previous = current
        return result
