"""No file content and no API key reaches a log, with every logger at DEBUG."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.conftest import access_token
from tools_app.services import tool_call

pytestmark = pytest.mark.django_db(transaction=True)

MARKER = f"FILE-CONTENT-{uuid.uuid4().hex}"
KEYS = ("test-kimi-key", "test-glm-key")


class Everything(logging.Handler):
    """What any handler without our filters would have written."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
def every_logger_at_debug() -> Iterator[tuple[io.StringIO, Everything]]:
    """The configured console handler writing to a buffer, and every logger (the SDKs' too) at DEBUG."""
    console = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    buffer = io.StringIO()
    previous_stream = console.setStream(buffer)  # type: ignore[attr-defined]
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    levels = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    unfiltered = Everything()
    logging.getLogger().addHandler(unfiltered)
    try:
        yield buffer, unfiltered
    finally:
        logging.getLogger().removeHandler(unfiltered)
        for logger, level in levels:
            logger.setLevel(level)
        console.setStream(previous_stream)  # type: ignore[attr-defined]


def test_a_large_upload_and_its_provider_round_trips_log_no_content_and_no_key(
    user: Any, every_logger_at_debug: tuple[io.StringIO, Everything]
) -> None:
    buffer, unfiltered = every_logger_at_debug
    line = f"{MARKER} some source line\n"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    big = (line * 60_000).encode()  # about 3 MB
    assert client.post("/api/files/", {"file": SimpleUploadedFile("big.txt", big)}).status_code == 201
    # Small enough for a model's context, large enough to go through the providers' files APIs.
    readable = (line * 6_000).encode()
    file_id = client.post("/api/files/", {"file": SimpleUploadedFile("readable.txt", readable)}).json()["id"]

    for name, arguments in [
        ("kimi_chat_with_files", {"prompt": "summarise", "files": [file_id]}),
        ("chat", {"prompt": "again", "model": "glm", "files": [file_id]}),
        ("smart_file_download", {"file": file_id}),
    ]:
        outcome = async_to_sync(tool_call)(user=user, name=name, arguments=arguments, request_id=uuid.uuid4().hex)
        assert "error" not in outcome, outcome
    logging.getLogger("tools_app").warning("a key in a message: %s", KEYS[0])
    # openai 1.x (inside our version range) logs every request's body like this at DEBUG.
    body = {"json_data": {"messages": [{"role": "system", "content": MARKER}]}}
    logging.getLogger("openai._base_client").debug("Request options: %s", body)

    written = buffer.getvalue()
    assert "stored big.txt as blob" in written and "uploaded blob" in written  # DEBUG/INFO really captured
    assert "a key in a message: <redacted>" in written
    assert MARKER not in written
    assert not any(key in written for key in KEYS)
    assert any(MARKER in line for line in unfiltered.lines)  # it was emitted: the filters kept it out
