"""The request id: taken from ``X-Request-ID`` or made up, kept in a context variable for the request's duration.

Every log record gets a ``request_id`` attribute (``-`` outside a request) through :func:`install_log_record_ids`,
so that a log format can show it; every error body carries it (see ``api.errors.error_body``).
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

HEADER = "X-Request-ID"
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_current: ContextVar[str | None] = ContextVar("mlsearch_request_id", default=None)
_installed = False


def new_request_id(incoming: str | None = None) -> str:
    """The incoming id when it is a sensible token (1 to 128 of ``A-Z a-z 0-9 . _ : -``), else a new random one."""
    if incoming and _VALID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def set_request_id(request_id: str | None) -> None:
    """Make ``request_id`` the current request's id (in this task's context)."""
    _current.set(request_id)


def current_request_id() -> str | None:
    """The id of the request being served, or None outside a request."""
    return _current.get()


def install_log_record_ids() -> None:
    """Give every log record a ``request_id`` attribute (the current request's, or ``-``); idempotent.

    A record factory rather than a filter, so that records of every logger (uvicorn's access log included)
    carry it whichever handler formats them.
    """
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)  # type: ignore[arg-type]
        record.request_id = _current.get() or "-"
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
