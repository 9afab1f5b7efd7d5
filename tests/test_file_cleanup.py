"""cleanup_files: unreferenced blobs go after the grace period, with their provider copies; nothing else does."""

from __future__ import annotations

import os
import random
import threading
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db import connections

from files_app.blobs import blob_from_chunks, incoming_dir
from files_app.cleanup import files_cleanup
from files_app.models import CleanupRun, FileReference, ProviderFileUpload, StoredFile
from files_app.services import file_ingest, file_read_text, file_reference_drop, provider_copy_ensure
from tools_app.calls import CallContext
from tools_app.providers import get_provider

pytestmark = pytest.mark.django_db(transaction=True)


def ingest(owner: Any, data: bytes, name: str = "f.txt") -> FileReference:
    return file_ingest(owner=owner, blob=blob_from_chunks([data]), name=name)


def with_kimi_copy(owner: Any, data: bytes, name: str = "f.txt") -> FileReference:
    reference = ingest(owner, data, name)
    async_to_sync(provider_copy_ensure)(
        reference=reference, provider=get_provider("kimi"), caller=CallContext(user=owner, request_id="t")
    )
    return reference


def test_an_unreferenced_blob_goes_with_its_storage_object_and_provider_copy(user: Any, stub: Any) -> None:
    reference = with_kimi_copy(user, b"goodbye")
    path = Path(reference.stored_file.blob.path)
    (copy_id,) = stub.files
    file_reference_drop(owner=user, file_id=reference.pk)

    run = files_cleanup(grace_hours=0)

    assert (run.status, run.candidates, run.blobs_removed, run.bytes_freed) == ("finished", 1, 1, 7)
    assert run.provider_copies_deleted == 1 and copy_id not in stub.files
    assert not path.exists()
    assert not StoredFile.objects.exists() and not ProviderFileUpload.objects.exists()
    assert CleanupRun.objects.get() == run


def test_a_referenced_blob_and_one_inside_its_grace_period_are_kept(user: Any) -> None:
    ingest(user, b"still used")
    dropped = ingest(user, b"recently dropped")
    file_reference_drop(owner=user, file_id=dropped.pk)
    run = files_cleanup(grace_hours=1)
    assert (run.candidates, run.blobs_removed) == (0, 0)
    assert StoredFile.objects.count() == 2


def test_a_dry_run_changes_nothing_and_records_what_it_would_do(user: Any, stub: Any) -> None:
    reference = with_kimi_copy(user, b"would go")
    file_reference_drop(owner=user, file_id=reference.pk)
    run = files_cleanup(grace_hours=0, dry_run=True)
    assert (run.dry_run, run.candidates, run.bytes_freed, run.provider_copies_deleted) == (True, 1, 8, 1)
    assert StoredFile.objects.filter(deleted_at__isnull=True).count() == 1 and len(stub.files) == 1
    assert Path(reference.stored_file.blob.path).exists()


def test_content_uploaded_again_while_cleanup_deletes_it_survives_intact(user: Any, other_user: Any) -> None:
    old = with_kimi_copy(user, b"phoenix", "slow[[stub:delete_delay=0.5]].txt")
    file_reference_drop(owner=user, file_id=old.pk)
    runs: list[CleanupRun] = []

    def clean() -> None:
        try:
            runs.append(files_cleanup(grace_hours=0))
        finally:
            connections.close_all()

    cleaner = threading.Thread(target=clean)
    cleaner.start()
    deadline = time.monotonic() + 5
    while not StoredFile.objects.filter(deleted_at__isnull=False).exists():  # wait for the claim
        assert time.monotonic() < deadline
        time.sleep(0.01)
    reborn = ingest(other_user, b"phoenix", "again.txt")  # while the provider copy is being deleted
    cleaner.join(timeout=10)

    assert runs[0].blobs_removed == 1
    stored = StoredFile.objects.get()
    assert stored.pk == reborn.stored_file_id != old.stored_file_id
    assert stored.ref_count == 1 and file_read_text(stored=stored) == "phoenix"


def test_uploads_racing_cleanup_never_lose_a_referenced_blob(django_user_model: Any) -> None:
    users = [django_user_model.objects.create_user(username=f"racer{i}") for i in range(4)]
    problems: list[str] = []
    stop = threading.Event()

    def churn(owner: Any) -> None:
        # Take a reference, check the blob while holding it, let go: the count keeps falling to zero.
        try:
            while not stop.is_set():
                reference = ingest(owner, b"contended content")
                stored = StoredFile.objects.get(pk=reference.stored_file_id)
                if stored.deleted_at is not None or file_read_text(stored=stored) != "contended content":
                    problems.append(f"blob {stored.pk} lost while referenced")
                file_reference_drop(owner=owner, file_id=reference.pk)
                time.sleep(random.random() * 0.03)  # idle moments, in which cleanup can claim the blob
        except Exception as exc:
            problems.append(repr(exc))
        finally:
            connections.close_all()

    def clean() -> None:
        try:
            while not stop.is_set():
                files_cleanup(grace_hours=0)
        except Exception as exc:
            problems.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=churn, args=(u,)) for u in users] + [threading.Thread(target=clean)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join(timeout=20)

    assert problems == []
    assert CleanupRun.objects.filter(blobs_removed__gt=0).exists()  # cleanup really removed blobs in between
    for stored in StoredFile.objects.all():
        assert stored.ref_count == stored.references.count() == 0


def test_a_provider_copy_that_cannot_be_deleted_keeps_the_blob_for_the_next_run(
    user: Any, stub: Any, settings: Any
) -> None:
    reference = with_kimi_copy(user, b"stubborn")
    file_reference_drop(owner=user, file_id=reference.pk)
    settings.KIMI_API_KEY = ""  # Kimi unreachable for this run
    first = files_cleanup(grace_hours=0)
    assert first.blobs_removed == 0 and "not configured" in first.errors[0]
    assert StoredFile.objects.get().deleted_at is not None and len(stub.files) == 1

    settings.KIMI_API_KEY = "test-kimi-key"
    second = files_cleanup(grace_hours=0)
    assert (second.blobs_removed, second.provider_copies_deleted) == (1, 1)
    assert not StoredFile.objects.exists() and stub.files == {}


def test_a_provider_copy_already_gone_from_the_provider_counts_as_deleted(user: Any, stub: Any) -> None:
    reference = with_kimi_copy(user, b"vanished")
    file_reference_drop(owner=user, file_id=reference.pk)
    stub.files.clear()  # deleted on the provider's side meanwhile
    run = files_cleanup(grace_hours=0)
    assert (run.blobs_removed, run.provider_copies_deleted, run.errors) == (1, 1, [])
    assert len(stub.of_kind("file_delete")) == 0 and not StoredFile.objects.exists()


def test_the_command_shows_progress_and_a_summary(user: Any) -> None:
    for index in range(3):
        file_reference_drop(owner=user, file_id=ingest(user, f"file {index}".encode()).pk)
    out = StringIO()
    call_command("cleanup_files", "--grace-hours", "0", "--dry-run", stdout=out)
    assert "would remove 3 blob(s)" in out.getvalue()
    call_command("cleanup_files", "--grace-hours", "0", stdout=out)
    assert "3/3 blobs examined" in out.getvalue() and "removed 3 of 3 blob(s)" in out.getvalue()
    assert list(CleanupRun.objects.values_list("dry_run", "blobs_removed").order_by("pk")) == [(True, 0), (False, 3)]


def test_temporary_files_left_by_a_dead_upload_are_swept() -> None:
    stale = incoming_dir() / "upload-dead"
    stale.write_bytes(b"half an upload")
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    fresh = incoming_dir() / "upload-live"
    fresh.write_bytes(b"in progress")
    files_cleanup(grace_hours=0)
    assert not stale.exists() and fresh.exists()
    fresh.unlink()
