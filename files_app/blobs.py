"""Write incoming bytes once, hashing them as they pass, and place them in storage.

An upload is written to a temporary file beside the blob store while SHA-256 (its
identity) and xxh3-128 (a fast check) are computed over the same chunks, so a file
is never read twice nor held in memory. Placing it in storage is then a rename on the
filesystem storage (any other storage backend streams it).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import xxhash
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from exai_site.text import human_size

CHUNK_BYTES = 1024 * 1024


class FileTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than the limit of {human_size(limit)}")
        self.limit = limit


def incoming_dir() -> Path:
    """Temporary files live beside the blobs, so placing one is a rename on the same filesystem."""
    path = Path(settings.MEDIA_ROOT) / ".incoming"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class HashedBlob:
    """Bytes written to a temporary file, with their size and hashes."""

    path: Path
    size: int
    sha256: str
    xxh3_128: str

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class BlobWriter:
    """Stream bytes to a temporary file, hashing them; refuse more than `limit` bytes."""

    def __init__(self, *, limit: int | None = None) -> None:
        self.limit = limit
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._xxh = xxhash.xxh3_128()
        self._file = tempfile.NamedTemporaryFile(dir=incoming_dir(), prefix="upload-", delete=False)  # noqa: SIM115

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            self.abort()
            raise FileTooLarge(self.limit)
        self._sha256.update(chunk)
        self._xxh.update(chunk)
        self._file.write(chunk)

    def finish(self) -> HashedBlob:
        self._file.close()
        return HashedBlob(Path(self._file.name), self.size, self._sha256.hexdigest(), self._xxh.hexdigest())

    def abort(self) -> None:
        self._file.close()
        Path(self._file.name).unlink(missing_ok=True)


def blob_from_chunks(chunks: Iterable[bytes], *, limit: int | None = None) -> HashedBlob:
    writer = BlobWriter(limit=limit)
    try:
        for chunk in chunks:
            writer.write(chunk)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()


def blob_from_stream(stream: BinaryIO, *, limit: int | None = None) -> HashedBlob:
    return blob_from_chunks(iter(lambda: stream.read(CHUNK_BYTES), b""), limit=limit)


class _MovableFile(File):
    """A finished temporary file that FileSystemStorage moves into place instead of copying."""

    def temporary_file_path(self) -> str:
        return str(self.name)


def blob_place(blob: HashedBlob) -> str:
    """Put the blob into storage under a name of its own and return that name.

    The name carries a random part beside the hash: a blob that cleanup is deleting and a
    new blob of the same content never share a storage object.
    """
    name = f"blobs/{blob.sha256[:2]}/{blob.sha256[2:4]}/{blob.sha256}-{uuid.uuid4().hex[:12]}"
    with blob.path.open("rb") as handle:
        return default_storage.save(name, _MovableFile(handle, name=str(blob.path)))


def blob_open(name: str) -> BinaryIO:
    return default_storage.open(name, "rb")  # type: ignore[return-value]


def blob_delete(name: str) -> None:
    default_storage.delete(name)


@asynccontextmanager
async def blob_local_path(name: str) -> AsyncIterator[Path]:
    """A local path to the blob for an SDK to stream from: the file itself on the filesystem
    storage, else a temporary copy that is removed afterwards."""
    try:
        local: Path | None = Path(default_storage.path(name))
    except NotImplementedError:  # a remote storage
        local = None
    if local is not None:
        yield local
        return

    def copy() -> Path:
        with blob_open(name) as source, tempfile.NamedTemporaryFile(dir=incoming_dir(), delete=False) as target:
            shutil.copyfileobj(source, target, CHUNK_BYTES)
        return Path(target.name)

    path = await sync_to_async(copy)()
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
