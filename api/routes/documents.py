"""``/documents``: write, upload, delete and list the documents of the index (admin key, as ``/admin/reload``).

A write answers once the document is durably stored; it becomes searchable when the incremental update that
contains it is published (the answer names that version). ``GET /documents/{doc_id}`` says whether it is yet.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, File, Form, Query, UploadFile

from api.deps import AdminDep, SearcherDep
from api.document_schemas import DocumentIn, DocumentInfo, DocumentList, DocumentWrite
from api.documents import UpdaterDep
from indexing.docstore import DocumentStatus, check_doc_id, document_statuses
from indexing.loaders.dispatch import document_from_text, load_bytes, with_tags
from indexing.updates import WriteReceipt, document_seq
from mlsearch.errors import DocumentNotFoundError, UploadTooLargeError
from search.searcher import Searcher

ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No X-API-Key header."},
    403: {"description": "Wrong key, or admin endpoints disabled (no MLSEARCH_ADMIN_API_KEY)."},
    422: {"description": "A bad doc_id, a corrupt or encrypted PDF, an invalid notebook, or nothing to index."},
    503: {"description": "No index is loaded yet, or the document store is unavailable."},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ADMIN_ERRORS,
    413: {"description": "The body is larger than MLSEARCH_MAX_UPLOAD_BYTES."},
    415: {"description": "The file is of a type that cannot be read."},
}


def _write(receipt: WriteReceipt, searcher: Searcher, notes: list[str] | None = None) -> DocumentWrite:
    return DocumentWrite(
        doc_id=receipt.doc_id, seq=receipt.seq, deleted=receipt.deleted,
        visible_in_version=receipt.visible_in_version, current_version=searcher.version, notes=notes or [],
    )


def _info(status: DocumentStatus) -> DocumentInfo:
    return DocumentInfo(
        doc_id=status.doc_id, title=status.title, source_type=status.source_type, chunks=status.chunks,
        indexed=status.indexed, pending=status.pending, seq=status.seq,  # type: ignore[arg-type]
    )


def _statuses(searcher: Searcher, updater: Any) -> list[DocumentStatus]:
    indexed = {doc_id: (title, source, n) for doc_id, title, source, n in searcher.store.documents()}
    return document_statuses(indexed, list(updater.store), document_seq(searcher.manifest))


MULTIPART_SLACK = 64 * 1024


def make_router(max_upload_bytes: int) -> APIRouter:
    """The ``/documents`` router; its write routes accept documents up to ``max_upload_bytes``.

    The body limit of an upload leaves room for the multipart envelope; the file itself is then checked
    against ``max_upload_bytes`` (413 naming the file).
    """
    router = APIRouter(prefix="/documents", tags=["documents"])

    @router.put("/{doc_id}", response_model=DocumentWrite, status_code=202, responses=WRITE_ERRORS,
                max_body_size=max_upload_bytes)
    async def put_document(
        doc_id: str, body: DocumentIn, _: AdminDep, updater: UpdaterDep, searcher: SearcherDep
    ) -> DocumentWrite:
        """Create or replace a document from its text (Markdown or plain text)."""
        check_doc_id(doc_id)
        loaded = document_from_text(doc_id, body.text, title=body.title, tags=body.tags, text_format=body.format)
        receipt = await anyio.to_thread.run_sync(updater.put, loaded.document)
        return _write(receipt, searcher)

    @router.post("", response_model=DocumentWrite, status_code=202, responses=WRITE_ERRORS,
                 max_body_size=max_upload_bytes + MULTIPART_SLACK)
    async def upload_document(
        _: AdminDep, updater: UpdaterDep, searcher: SearcherDep,
        file: Annotated[UploadFile, File(description="A PDF, HTML, notebook, Markdown or text file.")],
        doc_id: Annotated[str | None, Form(description="The id (the file name without extension by default).")]
        = None,
        tags: Annotated[str | None, Form(description="Comma-separated tags.")] = None,
    ) -> DocumentWrite:
        """Create or replace a document from an uploaded file."""
        name = PurePath(file.filename or "upload").name
        doc_id = check_doc_id(doc_id if doc_id is not None else PurePath(name).stem)
        data = await file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise UploadTooLargeError(f"{name}: the file is larger than {max_upload_bytes} bytes")
        loaded = await anyio.to_thread.run_sync(lambda: load_bytes(data, name, doc_id))
        loaded = with_tags(loaded, tags)
        loaded.document.meta["path"] = f"upload/{name}"
        receipt = await anyio.to_thread.run_sync(updater.put, loaded.document)
        return _write(receipt, searcher, loaded.notes)

    @router.delete("/{doc_id}", response_model=DocumentWrite, status_code=202,
                   responses={**ADMIN_ERRORS, 404: {"description": "No document with this id."}})
    async def delete_document(doc_id: str, _: AdminDep, updater: UpdaterDep, searcher: SearcherDep) -> DocumentWrite:
        """Delete a document (from the index, and from the document store)."""
        check_doc_id(doc_id)
        receipt = await anyio.to_thread.run_sync(updater.delete, doc_id)
        return _write(receipt, searcher)

    @router.get("", response_model=DocumentList, responses=ADMIN_ERRORS)
    async def list_documents(
        _: AdminDep, updater: UpdaterDep, searcher: SearcherDep,
        offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> DocumentList:
        """The documents, by id: title, source type, chunk count and whether the latest write is served."""
        statuses = await anyio.to_thread.run_sync(_statuses, searcher, updater)
        return DocumentList(total=len(statuses), offset=offset, limit=limit, index_version=searcher.version,
                            documents=[_info(s) for s in statuses[offset : offset + limit]])

    @router.get("/{doc_id}", response_model=DocumentInfo,
                responses={**ADMIN_ERRORS, 404: {"description": "No document with this id."}})
    async def get_document(doc_id: str, _: AdminDep, updater: UpdaterDep, searcher: SearcherDep) -> DocumentInfo:
        """One document, and whether its latest write is searchable yet."""
        check_doc_id(doc_id)
        statuses = await anyio.to_thread.run_sync(_statuses, searcher, updater)
        for status in statuses:
            if status.doc_id == doc_id:
                return _info(status)
        raise DocumentNotFoundError(f"no document with id {doc_id!r}")

    return router
