"""The reference distribution: queries the service is known to be good at, kept in the state directory.

A reference comes from a query file (``--drift-reference FILE``: one query a line, or BEIR ``queries.jsonl``)
or from the first ``drift_reference_size`` queries the service answers. :class:`ReferenceStore` persists it
(``reference.json`` and ``reference.npz``, written atomically) and remembers, while one is being collected,
after which log row the collection started.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drift.features import QueryObservation, SearcherLike, observe_queries
from mlsearch.errors import DriftError, QueryFileError
from search.query_file import read_query_file

logger = logging.getLogger(__name__)


def read_queries(path: Path, what: str = "reference") -> list[str]:
    """Queries from a query file (:func:`search.query_file.read_query_file`: plain lines or JSON lines).

    Raises:
        DriftError: The file is missing, unreadable, holds no query, or has a bad line.
    """
    try:
        return read_query_file(path, what)
    except QueryFileError as exc:
        raise DriftError(str(exc)) from None


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (to know whether a stored reference came from the same file)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Reference:
    """The reference sample.

    Attributes:
        observations: The reference queries' measurements.
        source: ``queries`` (the first answered queries) or ``file:<path>``.
        created_at: Unix time it was frozen.
        last_id: The log row id when it was frozen; the window holds only later rows.
        model: The embedding model that measured it.
        digest: sha256 of the source file, for a file reference.
    """

    observations: list[QueryObservation]
    source: str = "queries"
    created_at: float = field(default_factory=time.time)
    last_id: int = 0
    model: str | None = None
    digest: str | None = None

    @property
    def size(self) -> int:
        """Queries in the reference."""
        return len(self.observations)

    @property
    def dimension(self) -> int:
        """Embedding size."""
        return int(self.observations[0].embedding.shape[0]) if self.observations else 0

    def meta(self) -> dict[str, Any]:
        """What ``reference.json`` records."""
        return {
            "source": self.source, "created_at": self.created_at, "size": self.size, "last_id": self.last_id,
            "model": self.model, "digest": self.digest, "dimension": self.dimension,
        }


def reference_from_queries(
    searcher: SearcherLike, queries: list[str], source: str, last_id: int = 0, digest: str | None = None
) -> Reference:
    """Measure reference queries with the searcher (the same features as live queries).

    Args:
        searcher: The searcher the service answers with.
        queries: The reference queries.
        source: Where they came from (``file:<path>``).
        last_id: The log's current last row id (the window starts after it).
        digest: sha256 of the source file.
    """
    observations = observe_queries(searcher, queries, method="reference")
    return Reference(observations, source=source, last_id=last_id, model=getattr(searcher.encoder, "name", None),
                     digest=digest)


class ReferenceStore:
    """Keeps the reference (and, while collecting one, where collection started) in a folder.

    Args:
        directory: The folder (``<state_dir>/drift``).
    """

    META = "reference.json"
    ARRAYS = "reference.npz"
    COLLECTING = "collecting.json"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _write_atomic(self, name: str, write: Any) -> None:
        target = self.directory / name
        temporary = target.with_name(f".{name}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write(temporary)
            os.replace(temporary, target)
        except OSError as exc:
            raise DriftError(f"state directory {self.directory} cannot be written: {exc.strerror or exc}") from None

    def save(self, reference: Reference) -> None:
        """Write the reference (arrays first, then the metadata that marks it complete)."""
        obs = reference.observations
        arrays: dict[str, np.ndarray] = {
            "embeddings": np.stack([o.embedding for o in obs]).astype(np.float32),
            "token_count": np.array([o.token_count for o in obs], dtype=np.int64),
            "unknown_share": np.array([o.unknown_share for o in obs], dtype=np.float64),
            "top_score": np.array([o.top_score for o in obs], dtype=np.float64),
            "keyword_match": np.array([o.keyword_match for o in obs], dtype=np.float64),
            "result_count": np.array([o.result_count for o in obs], dtype=np.int64),
            "time": np.array([o.time for o in obs], dtype=np.float64),
        }

        def write_arrays(path: Path) -> None:
            with path.open("wb") as handle:
                np.savez(handle, **arrays)  # type: ignore[arg-type]

        self._write_atomic(self.ARRAYS, write_arrays)
        self._write_atomic(self.META, lambda p: p.write_text(json.dumps(reference.meta(), indent=2)))
        (self.directory / self.COLLECTING).unlink(missing_ok=True)
        logger.info("drift reference saved: %d queries from %s", reference.size, reference.source)

    def load(self) -> Reference | None:
        """The stored reference, or None (also when its files are unreadable, which is logged)."""
        meta_path, arrays_path = self.directory / self.META, self.directory / self.ARRAYS
        if not meta_path.is_file() or not arrays_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            with np.load(arrays_path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
            if "keyword_match" not in arrays:  # a reference saved before the feature existed
                arrays["keyword_match"] = np.full(len(arrays["embeddings"]), np.nan)
        except (OSError, ValueError, KeyError) as exc:
            logger.error("drift reference in %s is unreadable (%s); collecting a new one", self.directory, exc)
            return None
        observations = [
            QueryObservation(
                embedding=arrays["embeddings"][i], token_count=int(arrays["token_count"][i]),
                unknown_share=float(arrays["unknown_share"][i]), top_score=float(arrays["top_score"][i]),
                keyword_match=float(arrays["keyword_match"][i]),
                result_count=int(arrays["result_count"][i]), method="reference", time=float(arrays["time"][i]),
            )
            for i in range(len(arrays["embeddings"]))
        ]
        return Reference(
            observations, source=meta.get("source", "queries"), created_at=float(meta.get("created_at", 0)),
            last_id=int(meta.get("last_id", 0)), model=meta.get("model"), digest=meta.get("digest"),
        )

    def collecting_after(self) -> int:
        """The log row id after which the next reference is collected (0: from the start of the log)."""
        path = self.directory / self.COLLECTING
        try:
            return int(json.loads(path.read_text())["after_id"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def reset(self, after_id: int) -> None:
        """Forget the reference; the next one is collected from the rows after ``after_id``."""
        self._write_atomic(self.COLLECTING, lambda p: p.write_text(json.dumps({"after_id": after_id})))
        for name in (self.META, self.ARRAYS):
            (self.directory / name).unlink(missing_ok=True)
