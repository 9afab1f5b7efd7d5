"""The upload handler that hashes a multipart file as Django parses it, straight to disk."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from rest_framework.exceptions import APIException

from exai_site.daphne_limits import MULTIPART_SLACK
from exai_site.text import upload_too_large_message
from files_app.blobs import CHUNK_BYTES, BlobWriter, FileTooLarge, HashedBlob


class UploadTooLarge(APIException):
    status_code = 413
    default_code = "too_large"

    def __init__(self) -> None:
        super().__init__(upload_too_large_message(settings.EXAI_MAX_UPLOAD_BYTES))


class TooManyFiles(APIException):
    status_code = 400
    default_code = "invalid_request"
    default_detail = "send exactly one file, as the multipart/form-data field `file`."


class HashedUpload(UploadedFile):
    """An uploaded file already written to a temporary file and hashed."""

    def __init__(self, blob: HashedBlob, *, name: str, content_type: str, charset: str | None) -> None:
        super().__init__(file=None, name=name, content_type=content_type, size=blob.size, charset=charset)
        self.blob = blob

    def close(self) -> None:
        # Django closes the files it parsed when parsing fails; ours is a path, removed by the handler.
        self.blob.discard()


class HashingUploadHandler(FileUploadHandler):
    """Write each file part through a BlobWriter: one pass, hashed on the way, never in memory.

    A body whose declared length is over the limit is refused before any of it is parsed;
    one that grows past the limit is stopped at the limit.
    """

    chunk_size = CHUNK_BYTES

    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self._writer: BlobWriter | None = None
        self.produced: list[HashedBlob] = []

    def handle_raw_input(
        self, input_data: Any, META: Any, content_length: int, boundary: Any, encoding: str | None = None
    ) -> None:
        if content_length > settings.EXAI_MAX_UPLOAD_BYTES + MULTIPART_SLACK:
            raise UploadTooLarge()

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        if self.produced or self._writer is not None:
            # One file per upload: a second part is refused before any of it is written.
            raise TooManyFiles()
        super().new_file(*args, **kwargs)
        self._writer = BlobWriter(limit=settings.EXAI_MAX_UPLOAD_BYTES)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        assert self._writer is not None
        try:
            self._writer.write(raw_data)
        except FileTooLarge:
            self._writer = None
            raise UploadTooLarge() from None

    def file_complete(self, file_size: int) -> HashedUpload:
        assert self._writer is not None
        blob = self._writer.finish()
        self._writer = None
        self.produced.append(blob)
        return HashedUpload(
            blob, name=self.file_name or "upload", content_type=self.content_type or "", charset=self.charset
        )

    def upload_interrupted(self) -> None:
        self.discard()

    def discard(self) -> None:
        """Remove every temporary file this handler made that ingest has not consumed."""
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        for blob in self.produced:
            blob.discard()
