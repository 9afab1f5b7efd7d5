"""The file tools and `chat`'s files, against the provider stub through the real SDKs."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from channels.db import database_sync_to_async
from rest_framework.test import APIClient

from files_app.blobs import blob_from_chunks
from files_app.models import FileReference, ProviderFileUpload, StoredFile
from files_app.services import file_ingest, provider_copy_ensure
from tests.conftest import access_token
from tests.helpers import call, connected, run
from tools_app.calls import CallContext
from tools_app.providers import get_provider

pytestmark = pytest.mark.django_db(transaction=True)

BIG = "a line of a long source file\n" * 40  # 1,160 bytes: over the embed limit these tests set


@pytest.fixture(autouse=True)
def small_embed_limit(settings: Any) -> None:
    settings.EXAI_EMBED_MAX_BYTES = 200


async def give(owner: Any, content: str | bytes, name: str = "notes.txt") -> str:
    data = content.encode() if isinstance(content, str) else content
    reference = await database_sync_to_async(file_ingest)(owner=owner, blob=blob_from_chunks([data]), name=name)
    return str(reference.pk)


def error_of(outcome: dict[str, Any]) -> tuple[str, str]:
    assert "error" in outcome, outcome
    return outcome["error"]["code"], outcome["error"]["message"]


def system_texts(stub: Any) -> list[str]:
    return [m["content"] for m in stub.chat_requests()[-1]["payload"]["messages"] if m["role"] == "system"]


async def test_chat_puts_a_small_text_file_into_the_prompt_without_uploading_it(user: Any, stub: Any) -> None:
    file_id = await give(user, "def add(a, b):\n    return a + b\n", "math.py")
    outcome = await run(user, "chat", {"prompt": "review this", "files": [file_id]})
    assert outcome["outputs"][0]["metadata"]["files"] == [file_id]
    assert "--- file: math.py ---\ndef add(a, b):" in system_texts(stub)[1]
    assert stub.of_kind("file_upload") == []


async def test_a_large_file_is_uploaded_once_and_its_extraction_fetched_once(
    user: Any, other_user: Any, stub: Any
) -> None:
    first = await run(user, "chat", {"prompt": "summarise", "files": [await give(user, BIG, "big.txt")]})
    assert "text" in first
    assert BIG.strip() in system_texts(stub)[1]
    again = await run(other_user, "chat", {"prompt": "again", "files": [await give(other_user, BIG, "copy.txt")]})
    assert "text" in again and "--- file: copy.txt ---" in system_texts(stub)[1]
    assert len(stub.of_kind("file_upload")) == 1
    assert len(stub.of_kind("file_content")) == 1
    upload = stub.of_kind("file_upload")[0]
    assert upload["purpose"] == "file-extract" and upload["filename"].startswith("exai-")


async def test_a_glm_model_reads_a_large_file_through_the_zai_files_api(user: Any, stub: Any) -> None:
    outcome = await run(user, "chat", {"prompt": "read", "model": "glm", "files": [await give(user, BIG)]})
    assert "text" in outcome, outcome
    (upload,) = stub.of_kind("file_upload")
    assert upload["purpose"] == "file"
    copy = await ProviderFileUpload.objects.aget()
    assert (copy.provider, copy.upload_method, copy.status) == ("glm", "file", "uploaded")


async def test_fifty_concurrent_upload_calls_for_one_content_upload_it_once(user: Any, stub: Any) -> None:
    slow = "slow[[stub:delay=0.3]].txt"  # the first upload is still running when the others ask
    ids = [await give(user, BIG, slow) for _ in range(50)]
    outcomes = await asyncio.gather(*(run(user, "kimi_upload_files", {"files": [i]}) for i in ids))
    provider_ids = {json.loads(o["text"])["files"][0]["provider_file_id"] for o in outcomes}
    assert len(provider_ids) == 1
    assert len(stub.of_kind("file_upload")) == 1
    assert (await StoredFile.objects.aget()).ref_count == 50


def test_two_event_loops_in_two_threads_upload_one_content_once(user: Any, stub: Any) -> None:
    stored = file_ingest(owner=user, blob=blob_from_chunks([b"x" * 500]), name="shared[[stub:delay=0.3]].bin")
    provider = get_provider("kimi")
    results: list[str] = []

    def ensure() -> None:
        copy = asyncio.run(
            provider_copy_ensure(reference=stored, provider=provider, caller=CallContext(user=user, request_id="t"))
        )
        results.append(copy.provider_file_id)

    threads = [threading.Thread(target=ensure) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 2 and len(set(results)) == 1
    assert len(stub.of_kind("file_upload_attempt")) == 1


async def test_several_files_upload_in_parallel_through_the_throttle(user: Any, stub: Any, settings: Any) -> None:
    settings.EXAI_KIMI_MAX_CONCURRENCY = 2
    ids = [await give(user, f"{BIG}{i}", f"f{i}[[stub:delay=0.2]].txt") for i in range(4)]
    outcome = await run(user, "kimi_upload_files", {"files": ids})
    assert [f["file_id"] for f in json.loads(outcome["text"])["files"]] == ids
    assert len(stub.of_kind("file_upload")) == 4


async def test_a_failed_upload_is_recorded_and_retried_by_the_next_call(user: Any, stub: Any) -> None:
    file_id = await give(user, BIG, "broken[[stub:status=500]].txt")
    code, message = error_of(await run(user, "kimi_upload_files", {"files": [file_id]}))
    assert code == "provider_error" and "500" in message
    copy = await ProviderFileUpload.objects.aget()
    assert copy.status == "failed" and "500" in copy.error
    error_of(await run(user, "kimi_upload_files", {"files": [file_id]}))
    assert len(stub.of_kind("file_upload_attempt")) == 2


async def test_callers_waiting_on_a_failing_upload_share_its_error_instead_of_retrying(user: Any, stub: Any) -> None:
    # Slow enough that every caller is waiting before the first upload fails, on a busy machine too.
    ids = [await give(user, BIG, "slowfail[[stub:delay=1]][[stub:status=503]].txt") for _ in range(5)]
    outcomes = await asyncio.gather(*(run(user, "kimi_upload_files", {"files": [i]}) for i in ids))
    assert {error_of(o)[0] for o in outcomes} == {"provider_error"}
    assert len(stub.of_kind("file_upload_attempt")) == 1


async def test_a_file_over_glms_limit_gets_an_error_naming_the_limit(user: Any, settings: Any, stub: Any) -> None:
    settings.EXAI_GLM_MAX_FILE_BYTES = 1_000
    code, message = error_of(await run(user, "glm_upload_file", {"file": await give(user, BIG)}))
    assert code == "invalid_arguments" and "Z.ai GLM's file limit of 1,000 bytes" in message
    assert stub.of_kind("file_upload_attempt") == []


async def test_smart_file_query_sends_a_file_too_big_for_glm_to_kimi(user: Any, settings: Any, stub: Any) -> None:
    settings.EXAI_GLM_MAX_FILE_BYTES = 1_000
    outcome = await run(user, "smart_file_query", {"file": await give(user, BIG), "question": "what is it?"})
    assert outcome["outputs"][0]["metadata"]["provider"] == "kimi"
    assert stub.chat_requests()[-1]["path"].startswith("/v1/")
    assert stub.chat_requests()[-1]["payload"]["messages"][-1]["content"] == "what is it?"


async def test_smart_file_query_names_the_limit_when_the_chosen_model_cannot_take_the_file(
    user: Any, settings: Any
) -> None:
    settings.EXAI_GLM_MAX_FILE_BYTES = 1_000
    arguments = {"file": await give(user, BIG), "question": "?", "model": "glm-4.5"}
    code, message = error_of(await run(user, "smart_file_query", arguments))
    assert code == "invalid_arguments" and "1,000 bytes" in message and "Kimi" in message


async def test_smart_file_query_embeds_a_small_file_and_uploads_nothing(user: Any, stub: Any) -> None:
    outcome = await run(user, "smart_file_query", {"file": await give(user, "tiny"), "question": "?"})
    assert "text" in outcome and stub.of_kind("file_upload") == []


async def test_a_file_too_large_for_every_provider_is_refused_clearly(user: Any, settings: Any) -> None:
    settings.EXAI_GLM_MAX_FILE_BYTES = settings.EXAI_KIMI_MAX_FILE_BYTES = 1_000
    code, message = error_of(await run(user, "smart_file_query", {"file": await give(user, BIG), "question": "?"}))
    assert code == "invalid_arguments" and "larger than any configured provider" in message


async def test_kimi_chat_with_files_uses_the_extraction_and_refuses_other_models(user: Any, stub: Any) -> None:
    file_id = await give(user, BIG, "report.txt")
    outcome = await run(user, "kimi_chat_with_files", {"prompt": "key points?", "files": [file_id]})
    assert outcome["outputs"][0]["metadata"]["model"] == "kimi-k2.6"
    assert "--- file: report.txt ---" in system_texts(stub)[1]
    code, message = error_of(
        await run(user, "kimi_chat_with_files", {"prompt": "x", "files": [file_id], "model": "glm"})
    )
    assert code == "invalid_arguments" and "not a Kimi model" in message


async def test_smart_file_download_saves_the_extraction_as_a_new_file_and_caches_it(user: Any, stub: Any) -> None:
    file_id = await give(user, BIG, "doc.txt")
    first = json.loads((await run(user, "smart_file_download", {"file": file_id}))["text"])
    saved = await FileReference.objects.select_related("stored_file").aget(pk=first["file_id"])
    assert saved.owner_id == user.pk and saved.name == "doc.txt.kimi.txt"
    provider_file_id = (await ProviderFileUpload.objects.aget()).provider_file_id
    second = json.loads((await run(user, "smart_file_download", {"provider_file_id": provider_file_id}))["text"])
    again = await FileReference.objects.select_related("stored_file").aget(pk=second["file_id"])
    assert again.stored_file_id == saved.stored_file_id  # same text, same blob
    assert len(stub.of_kind("file_content")) == 1


async def test_smart_file_download_will_not_fetch_another_users_provider_file(user: Any, other_user: Any) -> None:
    await run(user, "kimi_upload_files", {"files": [await give(user, BIG)]})
    provider_file_id = (await ProviderFileUpload.objects.aget()).provider_file_id
    code, message = error_of(await run(other_user, "smart_file_download", {"provider_file_id": provider_file_id}))
    assert code == "invalid_arguments" and "not a copy of any of your files" in message


async def test_another_users_file_id_is_refused_by_every_file_tool(user: Any, other_user: Any) -> None:
    theirs = await give(other_user, BIG)
    for name, arguments in [
        ("chat", {"prompt": "x", "files": [theirs]}),
        ("kimi_upload_files", {"files": [theirs]}),
        ("glm_upload_file", {"file": theirs}),
        ("smart_file_query", {"file": theirs, "question": "?"}),
        ("smart_file_download", {"file": theirs}),
        ("kimi_manage_files", {"action": "delete", "file": theirs}),
    ]:
        code, message = error_of(await run(user, name, arguments))
        assert code == "invalid_arguments" and "not among your files" in message, name
    assert (await StoredFile.objects.aget()).ref_count == 1


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("chat", {"prompt": "x", "files": "not-a-list"}),
        ("kimi_upload_files", {"files": []}),
        ("glm_upload_file", {}),
        ("smart_file_query", {"file": 7, "question": "?"}),
        ("smart_file_download", {"provider": "openai", "file": "x"}),
        ("kimi_manage_files", {"action": "shred"}),
    ],
)
async def test_file_tools_reject_bad_arguments(user: Any, name: str, arguments: dict[str, Any]) -> None:
    assert error_of(await run(user, name, arguments))[0] == "invalid_arguments"


async def test_upload_tools_name_the_missing_key_when_a_provider_is_not_configured(user: Any, settings: Any) -> None:
    settings.KIMI_API_KEY = ""
    code, message = error_of(await run(user, "kimi_upload_files", {"files": [await give(user, BIG)]}))
    assert code == "provider_unavailable" and "KIMI_API_KEY" in message


async def test_kimi_manage_files_lists_and_deletes_the_callers_files(user: Any) -> None:
    file_id = await give(user, BIG, "listed.txt")
    await run(user, "kimi_upload_files", {"files": [file_id]})
    listed = json.loads((await run(user, "kimi_manage_files", {"action": "list"}))["text"])["files"]
    assert [(f["file_id"], f["name"], f["kimi"]["status"]) for f in listed] == [(file_id, "listed.txt", "uploaded")]
    await run(user, "kimi_manage_files", {"action": "delete", "file": file_id})
    assert json.loads((await run(user, "kimi_manage_files", {"action": "list"}))["text"])["files"] == []
    assert (await StoredFile.objects.aget()).ref_count == 0


async def test_kimi_manage_files_cleanup_is_for_staff_and_removes_orphans_and_expired_files(
    user: Any, stub: Any, settings: Any
) -> None:
    code, _ = error_of(await run(user, "kimi_manage_files", {"action": "cleanup"}))
    assert code == "forbidden"
    user.is_staff = True
    await user.asave()
    settings.EXAI_FILE_GRACE_HOURS = 0
    # An orphan: a file this server uploaded whose row was never written (its process died);
    # and a file another application put under the same key.
    kimi = get_provider("kimi")
    orphan_id = await upload_directly(stub, kimi, b"lost", "exai-0123456789ab-lost.txt")
    foreign = await upload_directly(stub, kimi, b"x", "theirs.txt")
    expired = await give(user, BIG)
    await run(user, "kimi_upload_files", {"files": [expired]})
    await run(user, "kimi_manage_files", {"action": "delete", "file": expired})

    dry = json.loads((await run(user, "kimi_manage_files", {"action": "cleanup", "dry_run": True}))["text"])
    assert dry["orphaned_kimi_copies"] == [orphan_id] and dry["blobs_removed"] == 1
    assert orphan_id in stub.files and await StoredFile.objects.aexists()

    done = json.loads((await run(user, "kimi_manage_files", {"action": "cleanup"}))["text"])
    assert (done["blobs_removed"], done["provider_copies_deleted"]) == (1, 1)
    assert orphan_id not in stub.files and foreign in stub.files  # never another application's file
    assert set(stub.files) == {foreign}
    assert not await StoredFile.objects.aexists()


async def upload_directly(stub: Any, provider: Any, data: bytes, name: str) -> str:
    """A file put on the provider an hour ago, bypassing this server's records."""
    blob = blob_from_chunks([data])
    try:
        file_id = await provider.upload_file(path=blob.path, name=name)
    finally:
        blob.discard()
    stub.files[file_id]["created_at"] -= 3600
    return file_id


async def test_chat_with_files_works_over_the_exai_websocket(token: str, user: Any, stub: Any) -> None:
    file_id = await give(user, "print('hi')", "hi.py")
    comm = await connected(token)
    try:
        result = (await call(comm, "chat", {"prompt": "explain", "files": [file_id]}))[-1]
    finally:
        await comm.disconnect()
    assert result["op"] == "call_tool_res" and "text" in result
    assert "print('hi')" in system_texts(stub)[1]


async def test_dedup_is_invisible_another_uploader_sees_neither_content_type_nor_copies_nor_name(
    user: Any, other_user: Any
) -> None:
    data = BIG.encode()
    mine = await database_sync_to_async(file_ingest)(
        owner=user, blob=blob_from_chunks([data]), name="salaries-2026.csv", content_type="text/csv"
    )
    await run(user, "kimi_upload_files", {"files": [str(mine.pk)]})
    provider_file_id = (await ProviderFileUpload.objects.aget()).provider_file_id

    theirs = await database_sync_to_async(file_ingest)(
        owner=other_user, blob=blob_from_chunks([data]), name="notes.txt", content_type="text/plain"
    )
    assert theirs.stored_file_id == mine.stored_file_id  # one blob underneath
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(other_user)}")
    shown = (await asyncio.to_thread(client.get, f"/api/files/{theirs.pk}/")).json()
    assert (shown["content_type"], shown["provider_copies"]) == ("text/plain", [])
    listing = json.loads((await run(other_user, "kimi_manage_files", {"action": "list"}))["text"])
    assert [entry["kimi"] for entry in listing["files"]] == [None]
    # The provider id of my copy names nothing of theirs, nor my file's name.
    code, message = error_of(await run(other_user, "smart_file_download", {"provider_file_id": provider_file_id}))
    assert code == "invalid_arguments" and "salaries" not in message
    # Once they send their own reference, the copy (uploaded once) is theirs to see, under their name.
    await run(other_user, "kimi_upload_files", {"files": [str(theirs.pk)]})
    shown = (await asyncio.to_thread(client.get, f"/api/files/{theirs.pk}/")).json()
    assert [copy["provider_file_id"] for copy in shown["provider_copies"]] == [provider_file_id]
    saved = json.loads((await run(other_user, "smart_file_download", {"provider_file_id": provider_file_id}))["text"])
    assert saved["source"] == "notes.txt"
    assert await ProviderFileUpload.objects.acount() == 1
