"""Ingest: content hashed on the way in, one blob per content, reference counts that never drift."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
import xxhash
from django.db import IntegrityError, connections, transaction
from django.db.models import F

from files_app.blobs import BlobWriter, FileTooLarge, blob_from_chunks, incoming_dir
from files_app.models import FileReference, ProviderFileUpload, StoredFile
from files_app.services import file_ingest, file_read_text, file_reference_drop, provider_copy_ensure
from tools_app.calls import CallContext
from tools_app.providers import get_provider

pytestmark = pytest.mark.django_db(transaction=True)


def ingest(owner: Any, data: bytes, name: str = "notes.txt") -> FileReference:
    return file_ingest(owner=owner, blob=blob_from_chunks([data]), name=name, content_type="text/plain")


def stored_path(stored: StoredFile) -> Path:
    return Path(stored.blob.path)


def test_a_blob_is_hashed_as_it_is_written(file_root: Path) -> None:
    data = b"0123456789abcdef" * 100_000
    writer = BlobWriter()
    for start in range(0, len(data), 65_536):
        writer.write(data[start : start + 65_536])
    blob = writer.finish()
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert blob.xxh3_128 == xxhash.xxh3_128(data).hexdigest()
    assert blob.size == len(data) and blob.path.read_bytes() == data
    blob.discard()


def test_the_same_content_uploaded_twice_is_stored_once_with_two_references(user: Any, other_user: Any) -> None:
    first = ingest(user, b"same bytes", "a.txt")
    second = ingest(other_user, b"same bytes", "b.txt")
    assert first.pk != second.pk and first.stored_file_id == second.stored_file_id
    stored = StoredFile.objects.get()
    assert stored.ref_count == 2 and stored.original_name == "a.txt"
    assert (first.name, second.name) == ("a.txt", "b.txt")
    assert len(list(stored_path(stored).parent.iterdir())) == 1  # the second copy was discarded


def test_no_temporary_file_is_left_behind_by_ingest(user: Any) -> None:
    ingest(user, b"one")
    ingest(user, b"one")
    assert list(incoming_dir().iterdir()) == []


def test_fifty_concurrent_uploads_of_one_content_leave_one_blob_fifty_references_and_one_provider_copy(
    django_user_model: Any, stub: Any
) -> None:
    users = [django_user_model.objects.create_user(username=f"u{i}") for i in range(5)]
    data = b"popular file contents\n" * 1000
    barrier = threading.Barrier(50)
    failures: list[BaseException] = []
    kimi = get_provider("kimi")

    def upload(index: int) -> None:
        # Each thread is a request of its own: its own database connection and event loop.
        try:
            blob = blob_from_chunks([data])
            barrier.wait()
            reference = file_ingest(owner=users[index % 5], blob=blob, name="popular[[stub:delay=0.2]].txt")
            asyncio.run(
                provider_copy_ensure(
                    reference=reference,
                    provider=kimi,
                    caller=CallContext(user=None, request_id="t", owner=reference.owner_id),
                )
            )
        except BaseException as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    stored = StoredFile.objects.get()
    assert stored.ref_count == 50 == FileReference.objects.filter(stored_file=stored).count()
    assert list(stored_path(stored).parent.iterdir()) == [stored_path(stored)]
    assert stored_path(stored).read_bytes() == data
    assert list(incoming_dir().iterdir()) == []
    assert len(stub.of_kind("file_upload_attempt")) == 1
    assert ProviderFileUpload.objects.get().status == "uploaded"


def test_an_empty_file_is_stored_and_read_back_as_empty_text(user: Any) -> None:
    reference = ingest(user, b"", "empty.txt")
    assert reference.stored_file.size == 0
    assert reference.stored_file.sha256 == hashlib.sha256(b"").hexdigest()
    assert file_read_text(stored=reference.stored_file) == ""


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Windows\\system32\\evil.dll", "evil.dll"),
        ("/abs/path/notes.md", "notes.md"),
        ("..", "upload"),
        ("...hidden", "hidden"),
        ("name\x00with\x1bcontrols.txt", "namewithcontrols.txt"),
        ("", "upload"),
    ],
)
def test_path_tricks_in_file_names_are_harmless(user: Any, file_root: Path, given: str, kept: str) -> None:
    reference = ingest(user, f"content for {given!r}".encode(), given)
    assert reference.name == kept
    path = stored_path(reference.stored_file).resolve()
    assert path.is_relative_to(file_root.resolve() / "blobs")
    assert reference.stored_file.sha256 in path.name  # stored under its hash, never under the given name


def test_a_file_over_the_limit_is_refused_and_leaves_no_temporary_file() -> None:
    writer = BlobWriter(limit=1000)
    writer.write(b"x" * 1000)
    with pytest.raises(FileTooLarge, match="1,000 bytes"):
        writer.write(b"x")
    assert list(incoming_dir().iterdir()) == []


def test_dropping_a_reference_lowers_the_count_and_only_the_owner_can_drop_it(user: Any, other_user: Any) -> None:
    mine = ingest(user, b"shared")
    ingest(other_user, b"shared")
    assert file_reference_drop(owner=other_user, file_id=mine.pk) is False
    assert file_reference_drop(owner=user, file_id=mine.pk) is True
    assert file_reference_drop(owner=user, file_id="not-a-uuid") is False
    assert StoredFile.objects.get().ref_count == 1


def test_deleting_a_user_drops_the_counts_of_their_references(user: Any, other_user: Any) -> None:
    ingest(user, b"x")
    ingest(user, b"x")
    ingest(other_user, b"x")
    user.delete()
    assert StoredFile.objects.get().ref_count == 1


def test_the_database_refuses_a_negative_reference_count(user: Any) -> None:
    stored = ingest(user, b"x").stored_file
    with pytest.raises(IntegrityError), transaction.atomic():
        StoredFile.objects.filter(pk=stored.pk).update(ref_count=F("ref_count") - 2)


def test_the_database_refuses_two_live_blobs_of_one_content(user: Any) -> None:
    stored = ingest(user, b"x").stored_file
    with pytest.raises(IntegrityError), transaction.atomic():
        StoredFile.objects.create(
            sha256=stored.sha256, xxh3_128="0", size=1, original_name="dup", blob="b", last_referenced=stored.created
        )
