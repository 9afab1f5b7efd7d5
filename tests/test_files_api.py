"""REST /api/files/: streamed multipart upload, the caller's own files only, one error shape."""

from __future__ import annotations

import hashlib
import json
import socket
from typing import Any

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from files_app.blobs import incoming_dir
from files_app.models import FileReference, StoredFile
from tests.conftest import ServerProcess, access_token

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    return client


def upload(client: APIClient, data: bytes, name: str = "notes.txt", **extra: Any) -> Any:
    return client.post("/api/files/", {"file": SimpleUploadedFile(name, data, "text/plain"), **extra})


def test_an_upload_returns_the_file_with_its_hash_and_size(user: Any) -> None:
    response = upload(client_for(user), b"hello files", "hello.txt")
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "hello.txt" and body["size"] == 11
    assert body["sha256"] == hashlib.sha256(b"hello files").hexdigest()
    assert body["provider_copies"] == [] and body["continuation_id"] is None
    assert FileReference.objects.get(pk=body["id"]).owner == user


def test_uploading_the_same_content_again_gives_a_new_id_and_no_new_blob(user: Any) -> None:
    client = client_for(user)
    first, second = upload(client, b"twice").json(), upload(client, b"twice").json()
    assert first["id"] != second["id"]
    assert StoredFile.objects.get().ref_count == 2


def test_a_file_is_listed_read_downloaded_and_deleted_by_its_owner(user: Any) -> None:
    client = client_for(user)
    file_id = upload(client, b"round trip", "trip.txt").json()["id"]
    assert [f["id"] for f in client.get("/api/files/").json()["files"]] == [file_id]
    assert client.get(f"/api/files/{file_id}/").json()["name"] == "trip.txt"
    download = client.get(f"/api/files/{file_id}/content/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"round trip"
    assert 'filename="trip.txt"' in download["Content-Disposition"]
    assert client.delete(f"/api/files/{file_id}/").status_code == 204
    assert client.get(f"/api/files/{file_id}/").status_code == 404
    assert StoredFile.objects.get().ref_count == 0


def test_another_user_can_neither_see_read_nor_delete_my_file(user: Any, other_user: Any) -> None:
    file_id = upload(client_for(user), b"private").json()["id"]
    intruder = client_for(other_user)
    assert intruder.get("/api/files/").json()["files"] == []
    for response in (
        intruder.get(f"/api/files/{file_id}/"),
        intruder.get(f"/api/files/{file_id}/content/"),
        intruder.delete(f"/api/files/{file_id}/"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert StoredFile.objects.get().ref_count == 1


def test_files_need_a_token() -> None:
    response = APIClient().get("/api/files/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


def test_an_upload_without_a_file_field_is_a_clear_400(user: Any) -> None:
    response = client_for(user).post("/api/files/", {"other": SimpleUploadedFile("x.txt", b"x")})
    assert response.status_code == 400
    assert "`file`" in json.dumps(response.json()["error"]["details"])


def test_an_upload_for_someone_elses_conversation_is_refused(user: Any, other_user: Any) -> None:
    from tools_app.models import Conversation

    thread = Conversation.objects.create(owner=other_user, tool="chat", expires_at=Conversation.fresh_expiry())
    response = upload(client_for(user), b"x", continuation_id=str(thread.pk))
    assert response.status_code == 400 and "continuation_id" in response.json()["error"]["details"]
    mine = Conversation.objects.create(owner=user, tool="chat", expires_at=Conversation.fresh_expiry())
    assert upload(client_for(user), b"x", continuation_id=str(mine.pk)).json()["continuation_id"] == str(mine.pk)


@pytest.mark.parametrize("size", [5_000, 200_000], ids=["stopped-while-parsed", "refused-by-its-length"])
def test_an_oversized_upload_is_413_and_leaves_nothing_behind(user: Any, settings: Any, size: int) -> None:
    settings.EXAI_MAX_UPLOAD_BYTES = 1_000
    response = upload(client_for(user), b"x" * size)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert "1,000 bytes" in response.json()["error"]["message"]
    assert not StoredFile.objects.exists()
    assert list(incoming_dir().iterdir()) == []


def test_listing_files_costs_the_same_queries_for_one_file_or_many(user: Any) -> None:
    client = client_for(user)
    upload(client, b"first")
    with CaptureQueriesContext(connection) as one:
        assert len(client.get("/api/files/").json()["files"]) == 1
    for index in range(6):
        upload(client, f"more {index}".encode())
    with CaptureQueriesContext(connection) as many:
        assert len(client.get("/api/files/").json()["files"]) == 7
    assert len(many) == len(one)


@pytest.mark.e2e
def test_daphne_streams_an_upload_in_and_back_out(server: ServerProcess, user: Any) -> None:
    data = bytes(range(256)) * 12_000  # 3 MB of binary
    headers = {"Authorization": f"Bearer {access_token(user)}"}
    with httpx.Client(base_url=server.http_url, headers=headers, timeout=30) as client:
        created = client.post("/api/files/", files={"file": ("data.bin", data, "application/octet-stream")})
        assert created.status_code == 201, created.text
        assert created.json()["sha256"] == hashlib.sha256(data).hexdigest()
        assert client.get(f"/api/files/{created.json()['id']}/content/").content == data


@pytest.mark.e2e
def test_daphne_refuses_an_upload_over_the_limit_from_its_headers_without_reading_the_body(
    server: ServerProcess, user: Any
) -> None:
    declared = 200 * 1024 * 1024  # over the default 100 MB; none of it is ever sent
    request = (
        "POST /api/files/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {access_token(user)}\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request.encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["error"]["code"] == "too_large"
