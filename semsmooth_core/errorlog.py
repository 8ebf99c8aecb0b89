"""Details of unexpected errors go to a log file, the user gets one line.

The app (``app.py``) catches any exception a page raises, writes its traceback here and shows
one line with this file's path; the browser never sees a traceback (``client.showErrorDetails =
"none"`` in ``.streamlit/config.toml`` covers what escapes the guard).
"""

from __future__ import annotations

import datetime
import os
import traceback
from pathlib import Path

LOG_NAME = "app-errors.log"
MAX_LOG_BYTES = 5 * 2**20
"""The log is rotated once (to ``app-errors.log.1``) when it grows past this size."""


def log_path() -> Path:
    from semsmooth_core.paths import log_dir

    return log_dir() / LOG_NAME


def log_exception(exc: BaseException, where: str = "") -> Path:
    """Append ``exc``'s traceback (with a UTC time stamp and ``where``) to :func:`log_path` (mode
    0600) and return the path."""
    path = log_path()
    try:
        if path.exists() and path.stat().st_size > MAX_LOG_BYTES:
            os.replace(path, path.with_name(LOG_NAME + ".1"))
    except OSError:
        pass
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(f"--- {stamp} {where}\n{text}\n")
    return path


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, with its type when it is not a user error."""
    from semsmooth_core.validation import SemsmoothError

    msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    if isinstance(exc, SemsmoothError):
        return msg or type(exc).__name__
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
