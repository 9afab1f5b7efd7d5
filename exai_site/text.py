"""Text from the network as the rest of the server can store and send it: no lone surrogates, no NUL.

JSON may spell a lone UTF-16 surrogate (`"\\ud800"`); Python decodes it into a `str` that
cannot be encoded as UTF-8, so PostgreSQL, Redis, a WebSocket frame or a metrics batch
holding it fails. JSON may also spell NUL (`"\\u0000"`), which PostgreSQL's text and jsonb
cannot hold (a thread's turn holding one could not be stored). Every JSON decoder at the edge
(the EXAI and MCP frames, POST /mcp, REST bodies) replaces both with U+FFFD, the Unicode
replacement character, as invalid UTF-8 is.
"""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Only an escape in the JSON text can produce one (the text itself arrives as valid UTF-8,
# and JSON allows no raw control character in a string).
_ESCAPED_UNSTORABLE = re.compile(r"\\u(?:[dD][89a-fA-F]|0000)")
_ESCAPED_UNSTORABLE_BYTES = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")


def storable_text(value: Any) -> Any:
    """`value` (a str, or lists and dicts of them) with every lone surrogate and NUL replaced by U+FFFD."""
    if isinstance(value, str):
        return value if value.isascii() and "\x00" not in value else _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable_text(key): storable_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable_text(item) for item in value]
    return value


def clean_decoded(decoded: Any, raw: str | bytes) -> Any:
    """What `json.loads(raw)` returned, cleaned only when the text could have spelled a surrogate."""
    pattern = _ESCAPED_UNSTORABLE_BYTES if isinstance(raw, bytes | bytearray) else _ESCAPED_UNSTORABLE
    return storable_text(decoded) if pattern.search(raw) else decoded  # type: ignore[arg-type]


def human_size(size: int) -> str:
    """A byte count as people say it: 512 bytes, 48 KB, 20 MB (binary multiples, as the limits are set)."""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.4g} {unit}"
    return f"{size:,} bytes"


def upload_too_large_message(limit: int) -> str:
    """What a caller is told of an upload over the limit (the REST upload and the server's 413)."""
    return f"the upload is over the limit of {human_size(limit)} ({limit:,} bytes)."
