"""The exception types of mlsearch. The API maps them to HTTP statuses in ``api/errors.py``."""

from __future__ import annotations


class MlsearchError(Exception):
    """Base class of every error that mlsearch raises on purpose; its message is one clear line."""


class CorpusError(MlsearchError):
    """The corpus folder is missing, empty, or holds nothing that can be indexed."""


class IndexNotBuiltError(MlsearchError):
    """The index directory holds no built index (or not the backend asked for)."""


class BackendUnavailableError(MlsearchError):
    """A backend cannot be used: its library is missing, or its server is not configured or down."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"backend {backend!r} is unavailable: {reason}")
        self.backend = backend
        self.reason = reason


class IndexCorruptError(MlsearchError):
    """An index version whose files are missing, truncated or corrupt (the message names the part)."""


class UnknownBackendError(MlsearchError):
    """A backend or method name that mlsearch does not know."""


class ModelMismatchError(MlsearchError):
    """An index was built with another embedding model than the one given."""


class ModelLoadError(MlsearchError):
    """The embedding model cannot be found, loaded, or fails its integrity check."""


class BadQueryError(MlsearchError):
    """A query that cannot be run (blank, too long, bad parameters)."""


class DatasetError(MlsearchError):
    """An evaluation dataset is missing or malformed (the message names the file and line)."""


class QueryFileError(DatasetError):
    """A file of queries is missing, unreadable, empty, or has a bad line (the message names the file and line)."""


class DriftError(MlsearchError):
    """Drift monitoring cannot proceed: a missing or empty reference or stream file, or an unwritable state dir."""


class StorageError(MlsearchError):
    """Files cannot be written: the disk is full or the folder is read-only (nothing half-written is kept)."""


class FinetuneError(MlsearchError):
    """Fine-tuning cannot run: too little data to train on or to split, or an output folder in the way."""


class DocumentError(MlsearchError):
    """A document cannot be ingested: corrupt or encrypted PDF, invalid notebook, nothing to index (names the file)."""


class UnsupportedDocumentError(DocumentError):
    """A file whose type mlsearch cannot read (neither its extension nor its content is known)."""


class DocumentNotFoundError(MlsearchError):
    """No document with this id in the document store."""


class InvalidDocumentIdError(DocumentError):
    """A document id that is empty, too long, or holds path separators, ``..`` or control characters."""


class UploadTooLargeError(DocumentError):
    """An uploaded file larger than ``MLSEARCH_MAX_UPLOAD_BYTES``."""


class BackendConfigError(MlsearchError):
    """A backend option is unknown or has a bad value (the message names the option and its variable)."""
