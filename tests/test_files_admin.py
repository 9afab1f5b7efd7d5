"""The files admin: blobs, users' files, upload history and cleanup runs, read-only."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from files_app.blobs import blob_from_chunks
from files_app.cleanup import files_cleanup
from files_app.services import file_ingest

pytestmark = pytest.mark.django_db(transaction=True)


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("model", ["storedfile", "filereference", "providerfileupload", "cleanuprun"])
def test_every_files_admin_page_renders_and_offers_no_add(admin_user: Any, model: str) -> None:
    file_ingest(owner=admin_user, blob=blob_from_chunks([b"admin sees me"]), name="seen.txt")
    files_cleanup(grace_hours=0, dry_run=True)
    page = logged_in(admin_user).get(f"/admin/files_app/{model}/")
    assert page.status_code == 200
    assert logged_in(admin_user).get(f"/admin/files_app/{model}/add/").status_code == 403


def test_staff_who_are_not_superusers_see_only_their_own_files(user: Any, other_user: Any) -> None:
    from django.contrib.auth.models import Permission

    user.is_staff = True
    user.save()
    user.user_permissions.add(Permission.objects.get(codename="view_filereference"))
    file_ingest(owner=user, blob=blob_from_chunks([b"mine"]), name="mine.txt")
    file_ingest(owner=other_user, blob=blob_from_chunks([b"theirs"]), name="theirs.txt")
    page = logged_in(user).get("/admin/files_app/filereference/").content.decode()
    assert "mine.txt" in page and "theirs.txt" not in page
