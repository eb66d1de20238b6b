"""Markdown files: YAML front matter (``title``, ``tags`` and other scalars) becomes metadata."""

from __future__ import annotations

import re

import yaml

from indexing.loaders.base import LoadedDocument, clean_text, make_document, title_from_path

SOURCE_TYPE = "markdown"
SUFFIXES = frozenset({".md", ".markdown"})
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_LEADING_HEADING = re.compile(r"\A#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def split_front_matter(text: str) -> tuple[dict[str, object], str]:
    """The front matter as a dict, and the text after it.

    Raises:
        ValueError: The front matter is not valid YAML, or not a mapping.
    """
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"front matter is not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(meta, dict):
        raise ValueError("front matter is not a mapping")
    return meta, text[match.end() :]


def load_markdown_text(raw: str, path: str, doc_id: str, tags: object = None) -> LoadedDocument:
    """Load Markdown from a string (a file's text or an API body).

    Raises:
        ValueError: Bad front matter.
    """
    meta, body = split_front_matter(raw.lstrip("\ufeff"))
    content = clean_text(body, markdown=True)
    title = meta.get("title")
    if not title:
        heading = _LEADING_HEADING.search(content)
        title = heading.group(1) if heading else title_from_path(path)
    extra = {k: v for k, v in meta.items() if k not in {"title", "tags"} and isinstance(v, str | int | float)}
    return LoadedDocument(make_document(
        doc_id, content, title=str(title), path=path, text_format="markdown", source_type=SOURCE_TYPE,
        tags=meta.get("tags") if tags is None else tags, extra=extra,
    ))


def load(data: bytes, path: str, doc_id: str) -> LoadedDocument:
    """Load a Markdown file's bytes.

    Raises:
        UnicodeDecodeError: Not UTF-8.
        ValueError: Bad front matter.
    """
    return load_markdown_text(data.decode("utf-8"), path, doc_id)
