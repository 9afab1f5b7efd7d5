"""What makes two errors the same one: the message normalised, the innermost project frame."""

from __future__ import annotations

import functools
import hashlib
import re
import tempfile
import traceback
from pathlib import Path
from types import TracebackType

from django.conf import settings

# Volatile parts of a message, replaced so "user 7 not found" and "user 8 not found" are one error.
_VOLATILE = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<uuid>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<addr>"),
    (re.compile(r"(?:" + re.escape(tempfile.gettempdir()) + r"|/tmp|/var/tmp)/\S*"), "<tmp>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b[0-9a-f]{12,}\b", re.I), "<hex>"),
    (re.compile(r"\b\d+(?:\.\d+)?\b"), "<n>"),
]


def normalize_message(message: str) -> str:
    for pattern, replacement in _VOLATILE:
        message = pattern.sub(replacement, message)
    return message[:2000]


@functools.lru_cache(maxsize=4096)
def project_file(filename: str) -> str | None:
    """The file's path inside the project, or None for library code (cached: it resolves the path)."""
    path = Path(filename)
    try:
        relative = path.resolve().relative_to(settings.BASE_DIR)
    except ValueError:
        return None
    if relative.parts and relative.parts[0].startswith((".venv", "venv", "site-packages")):
        return None
    return relative.as_posix()


def innermost_project_frame(tb: TracebackType | None) -> str:
    """`path/in/project.py in function` of the deepest frame that is this project's code."""
    found = "unknown"
    for frame, _ in traceback.walk_tb(tb):
        relative = project_file(frame.f_code.co_filename)
        if relative is not None:
            # No line number: an error keeps its identity when unrelated lines move.
            found = f"{relative} in {frame.f_code.co_name}"
    return found


def fingerprint(error_type: str, normalized_message: str, location: str) -> str:
    return hashlib.sha256(f"{error_type}\x00{normalized_message}\x00{location}".encode()).hexdigest()
