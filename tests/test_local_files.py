"""Files from the machine the assistant runs on: the stdio bridge uploads the paths it is given,
content-addressed (the server is asked for the hash first), and workflow steps check their files."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.conftest import ServerProcess, access_token, server_env
from tests.helpers import metadata, run, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def api(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_by_hash_references_content_the_caller_already_holds_and_reveals_nothing_else(
    user: Any, other_user: Any
) -> None:
    content = b"print('hello')\n"
    digest = hashlib.sha256(content).hexdigest()
    missing = api(user).post("/api/files/by-hash/", {"sha256": digest, "name": "app.py"}, format="json")
    assert missing.status_code == 404 and "POST /api/files/" in missing.json()["error"]["message"]
    uploaded = api(other_user).post("/api/files/", {"file": SimpleUploadedFile("theirs.py", content)})
    assert uploaded.status_code == 201
    # Someone else holds this content: the caller is still told to send it.
    assert api(user).post("/api/files/by-hash/", {"sha256": digest, "name": "app.py"}, format="json").status_code == 404
    mine = api(user).post("/api/files/", {"file": SimpleUploadedFile("first.py", content)}).json()
    again = api(user).post(
        "/api/files/by-hash/", {"sha256": digest, "name": "src/app.py", "content_type": "text/x-python"}, format="json"
    )
    assert again.status_code == 201
    assert again.json()["id"] != mine["id"] and again.json()["name"] == "src/app.py"
    assert again.json()["sha256"] == digest
    bad = api(user).post("/api/files/by-hash/", {"sha256": "xyz", "name": "a"}, format="json")
    assert bad.status_code == 400


@pytest.mark.e2e
async def test_the_stdio_bridge_uploads_local_paths_once_by_content_and_names_a_missing_one(
    user: Any, provider_stub: Any, stub: Any, file_root: Path, django_db_blocker: Any, tmp_path: Path
) -> None:
    from tools_app.management.commands.mcp_stdio import serve_stdio

    log = tmp_path / "access.log"
    server = ServerProcess(server_env(django_db_blocker, provider_stub, file_root), log=log).start()
    source = tmp_path / "app.py"
    source.write_text("def answer():\n    return 42\n")

    def call(request_id: int, files: list[str]) -> dict[str, Any]:
        arguments = {"prompt": "what does it return?", "files": files}
        return {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": "chat", "arguments": arguments},
        }

    try:
        reader = asyncio.StreamReader()
        written: list[bytes] = []
        token = access_token(user)
        bridge = asyncio.ensure_future(serve_stdio(f"{server.ws_url}/ws", token, reader, written.append))
        # One after the other, as an assistant asks: the second finds the content already there.
        for count, line in enumerate(
            (call(1, [str(source)]), call(2, [str(source)]), call(3, [str(tmp_path / "gone.py")])), 1
        ):
            reader.feed_data(json.dumps(line).encode() + b"\n")
            await wait_for(lambda count=count: len(written) == count, timeout=30)
        reader.feed_eof()  # the client goes away once it has its answers
        await asyncio.wait_for(bridge, timeout=10)
        replies = {reply["id"]: reply for reply in map(json.loads, written)}
    finally:
        server.stop()
    for request_id in (1, 2):
        assert replies[request_id]["result"]["isError"] is False, replies[request_id]
    sent = [json.dumps(request["payload"]["messages"]) for request in stub.chat_requests()]
    assert len(sent) == 2 and all("return 42" in messages for messages in sent)
    access = log.read_text()
    assert access.count("POST /api/files/by-hash/") == 2  # asked both times
    assert access.count('"POST /api/files/"') == 1  # the bytes went once
    missing = replies[3]["result"]
    assert missing["isError"] is True and "invalid_arguments" in missing["content"][0]["text"]
    assert "gone.py: no such file on this machine" in missing["content"][0]["text"]


async def test_a_workflow_step_with_a_bad_file_is_refused_at_that_step(user: Any, settings: Any) -> None:
    step = {
        "step": "look at the pool",
        "step_number": 1,
        "total_steps": 3,
        "next_step_required": True,
        "findings": "starting",
        "relevant_files": ["00000000-0000-0000-0000-000000000000"],
    }
    refused = await run(user, "debug", step)
    assert refused["error"]["code"] == "invalid_arguments" and "not among your files" in refused["error"]["message"]
    fine = await run(user, "debug", {**step, "relevant_files": []})
    assert metadata(fine)["status"] == "pause_for_debug"
