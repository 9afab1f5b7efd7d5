"""Every provider request takes one path: breaker, throttle slots, error capture and a latency sample.

Chat is covered everywhere else; these are the requests that used to go round parts of it:
function calling, Z.ai's search API, the files API and the error investigator.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from errors_app import services as error_services
from errors_app.capture import Pending
from errors_app.models import ErrorInvestigation
from files_app.blobs import blob_from_chunks
from files_app.services import file_ingest
from metrics_app.recorder import buffer
from tests.helpers import captured_errors, run
from tools_app.circuit import get_circuit_breaker
from tools_app.providers import ProviderError

pytestmark = pytest.mark.django_db(transaction=True)

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


async def open_circuit(provider: str) -> None:
    # An authentication failure opens a provider's circuit at once.
    await get_circuit_breaker().record(provider, ProviderError("bad key", status=401), probe=False)


async def test_function_calling_fails_fast_on_an_open_circuit(user: Any, stub: Any) -> None:
    await open_circuit("kimi")
    arguments = {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS}
    outcome = await run(user, "kimi_chat_with_tools", arguments)
    assert outcome["error"]["code"] == "provider_unavailable" and stub.chat_requests() == []


async def test_web_search_fails_fast_on_an_open_circuit(user: Any, stub: Any) -> None:
    await open_circuit("glm")
    outcome = await run(user, "glm_web_search", {"query": "django 6"})
    assert outcome["error"]["code"] == "provider_unavailable" and stub.of_kind("web_search") == []


async def test_a_failing_web_search_is_captured_and_counted_against_the_provider(user: Any) -> None:
    outcome = await run(user, "glm_web_search", {"query": "django [[stub:status=500]]"})
    assert outcome["error"]["code"] == "provider_error"
    [error] = await captured_errors("stub search error")
    assert error.error_context["operation"] == "web search" and error.error_context["provider"] == "glm"
    assert (await get_circuit_breaker().snapshot(["glm"]))["glm"]["failures"] == 1


async def test_a_file_upload_fails_fast_on_an_open_circuit(user: Any, stub: Any, settings: Any) -> None:
    settings.EXAI_EMBED_MAX_BYTES = 10
    reference = await database_sync_to_async(file_ingest)(owner=user, blob=blob_from_chunks([b"x" * 100]), name="a.txt")
    await open_circuit("kimi")
    outcome = await run(user, "kimi_upload_files", {"files": [str(reference.pk)]})
    assert outcome["error"]["code"] == "provider_unavailable" and stub.of_kind("file_upload_attempt") == []


def make_error() -> int:
    now = timezone.now()
    pending = Pending("hash-path", "ConnectionError", "the cache is gone", "tools_app/x.py in y", {}, now, now)
    return error_services.error_record_occurrences(pending=pending).error_id


async def test_the_investigator_takes_the_one_path_and_leaves_a_latency_sample(stub: Any) -> None:
    buffer.take()
    error_id = await asyncio.to_thread(make_error)
    assert await error_services.error_investigate(error_id=error_id) is True
    [sample] = [sample for sample in buffer.take() if sample.tool == "investigator"]
    assert (sample.provider, sample.model, sample.status) == ("kimi", "kimi-k2.6", "ok")
    # A thinking model investigates with its reasoning turned low, and no temperature it refuses.
    payload = stub.chat_requests()[-1]["payload"]
    assert payload["reasoning_effort"] == "low" and "temperature" not in payload


async def test_the_investigator_fails_fast_on_an_open_circuit(stub: Any) -> None:
    error_id = await asyncio.to_thread(make_error)
    await open_circuit("kimi")
    assert await error_services.error_investigate(error_id=error_id) is False
    error = await ErrorInvestigation.objects.aget(pk=error_id)
    assert "circuit is open" in error.investigation_result["error"] and stub.chat_requests() == []
