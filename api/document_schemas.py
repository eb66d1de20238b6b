"""Request and response bodies of the ``/documents`` endpoints."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class DocumentIn(BaseModel):
    """The body of ``PUT /documents/{doc_id}``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"title": "Label smoothing", "text": "# Label smoothing\n\nSoft targets…",
                                         "tags": ["training"], "format": "markdown"}]},
    )

    title: str = Field(default="", max_length=500, description="The title (the first heading or the id if empty).")
    text: str = Field(min_length=1, description="The document's text.")
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    format: Literal["markdown", "text"] = Field(default="markdown", description="How to read the text.")


class DocumentWrite(BaseModel):
    """The answer to a write: stored durably, and the version in which it will be searchable."""

    doc_id: str
    seq: int = Field(description="The write's sequence number in the document store.")
    deleted: bool = False
    visible_in_version: str = Field(description="The index version that will contain this write.")
    current_version: str = Field(description="The version being served now.")
    notes: list[str] = Field(default_factory=list, description="E.g. PDF pages without a text layer.")


class DocumentInfo(BaseModel):
    """One document: what the index holds and whether its latest write is searchable yet."""

    doc_id: str
    title: str
    source_type: str
    chunks: int = Field(description="Chunks in the version being served (0 when not indexed yet).")
    indexed: bool = Field(description="Whether the version being served contains the latest write.")
    pending: Literal["upsert", "delete"] | None = Field(default=None, description="A write not served yet.")
    seq: int | None = Field(default=None, description="The latest write's sequence number, if written here.")


class DocumentList(BaseModel):
    """The answer of ``GET /documents``."""

    total: int
    offset: int
    limit: int
    index_version: str
    documents: list[DocumentInfo]
