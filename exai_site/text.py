"""Text from the network as the rest of the server can store and send it: no lone surrogates.

JSON may spell a lone UTF-16 surrogate (`"\\ud800"`); Python decodes it into a `str` that
cannot be encoded as UTF-8, so PostgreSQL, Redis, a WebSocket frame or a metrics batch
holding it fails. Every JSON decoder at the edge (the EXAI and MCP frames, POST /mcp, REST
bodies) replaces them with U+FFFD, the Unicode replacement character, as invalid UTF-8 is.
"""

from __future__ import annotations

import re
from typing import Any

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Only an escape in the JSON text can produce one (the text itself arrives as valid UTF-8).
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_ESCAPED_SURROGATE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


def without_surrogates(value: Any) -> Any:
    """`value` (a str, or lists and dicts of them) with every lone surrogate replaced by U+FFFD."""
    if isinstance(value, str):
        return value if value.isascii() else _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {without_surrogates(key): without_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_surrogates(item) for item in value]
    return value


def clean_decoded(decoded: Any, raw: str | bytes) -> Any:
    """What `json.loads(raw)` returned, cleaned only when the text could have spelled a surrogate."""
    pattern = _ESCAPED_SURROGATE_BYTES if isinstance(raw, bytes | bytearray) else _ESCAPED_SURROGATE
    return without_surrogates(decoded) if pattern.search(raw) else decoded  # type: ignore[arg-type]
