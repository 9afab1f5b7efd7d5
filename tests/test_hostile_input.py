"""Hostile input through the transports: lone surrogates, unbounded text fields, endless workflow steps."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from errors_app.capture import capture_exception, flush_errors
from errors_app.models import ErrorInvestigation
from metrics_app.models import LatencySample
from metrics_app.recorder import buffer
from tests.conftest import access_token
from tests.helpers import communicator, frames_until

pytestmark = pytest.mark.django_db(transaction=True)

SURROGATE = "\\ud800"  # as JSON spells it: decoded, a str no UTF-8 encoder takes


async def test_a_lone_surrogate_in_a_request_id_or_tool_name_is_replaced_and_answered(
    user: Any, other_user: Any
) -> None:
    comm = communicator("/ws", token=access_token(user))
    await comm.connect()
    await comm.send_to(text_data=f'{{"op":"call_tool","request_id":"r{SURROGATE}","name":"version","arguments":{{}}}}')
    answer = (await frames_until(comm, "call_tool_res"))[-1]
    assert answer["request_id"] == "r\ufffd" and "error" not in answer
    await comm.send_to(text_data=f'{{"op":"call_tool","request_id":"r2","name":"ver{SURROGATE}sion"}}')
    unknown = (await frames_until(comm, "call_tool_res"))[-1]
    assert unknown["error"]["code"] == "unknown_tool" and "\ufffd" in unknown["error"]["message"]
    await comm.disconnect()

    other = communicator("/ws", token=access_token(other_user))
    await other.connect()
    await other.send_to(text_data=json.dumps({"op": "call_tool", "request_id": "o1", "name": "version"}))
    await frames_until(other, "call_tool_res")
    await other.disconnect()
    # The batch holding the bad names is written whole: nobody's samples are lost.
    assert await sync_to_async(buffer.flush)() == 3
    assert await LatencySample.objects.filter(user_id=other_user.pk).acount() == 1


async def test_a_lone_surrogate_over_mcp_is_replaced(user: Any) -> None:
    comm = communicator("/mcp", token=access_token(user), subprotocols=["mcp"])
    await comm.connect()
    await comm.send_to(
        text_data=f'{{"jsonrpc":"2.0","id":"a{SURROGATE}","method":"tools/call","params":{{"name":"x{SURROGATE}"}}}}'
    )
    response = json.loads(await comm.receive_from())
    assert response["id"] == "a\ufffd"
    await comm.disconnect()


def test_a_lone_surrogate_in_a_rest_body_is_replaced(user: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    body = f'{{"arguments": {{"prompt": "hi {SURROGATE} there"}}}}'
    response = client.post("/api/tools/chat/call/", body, content_type="application/json")
    assert response.status_code == 200 and "hi \ufffd there" in response.json()["text"]


def test_a_captured_error_carrying_a_lone_surrogate_is_stored_and_shown(admin_user: Any) -> None:
    capture_exception(ValueError("bad id r\ud800 in request"), context={"request_id": "r\ud800"})
    [recorded] = flush_errors()
    error = ErrorInvestigation.objects.get(pk=recorded.error_id)
    assert "\ufffd" in error.error_message and error.error_context["request_id"] == "r\ufffd"
    client = Client()
    client.force_login(admin_user)
    assert client.get("/api/errors/").status_code == 200
    assert client.get(f"/api/errors/{error.pk}/").status_code == 200
    assert client.get(f"/admin/errors_app/errorinvestigation/{error.pk}/change/").status_code == 200


def test_a_sample_that_cannot_be_written_does_not_lose_the_rest_of_its_batch(user: Any) -> None:
    for tool in ("version", "bad\ud800tool", "chat"):
        sample = LatencySample(tool=tool, request_id=uuid.uuid4().hex, status="ok", total_latency_ms=1.0)
        sample.created = timezone.now()
        buffer.add(sample)
    assert buffer.flush() == 2
    assert set(LatencySample.objects.values_list("tool", flat=True)) == {"version", "chat"}
