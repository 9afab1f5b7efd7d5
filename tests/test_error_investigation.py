"""The AI investigation: structured answers parsed from the provider, failures kept for retry, one at a time."""

import asyncio
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from errors_app import services
from errors_app.models import ErrorInvestigation
from errors_app.occurrences import Pending
from tests.helpers import call, connected, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def make_error(message: str = "the cache is gone") -> int:
    now = timezone.now()
    pending = Pending(
        f"hash-{message}", "ConnectionError", message, "tools_app/x.py in y", {"stack_trace": "..."}, now, now
    )
    return services.error_record_occurrences(pending=pending).error_id


async def test_the_investigators_json_answer_is_parsed_and_stored(stub: Any) -> None:
    error_id = await asyncio.to_thread(make_error)
    assert await services.error_investigate(error_id=error_id) is True
    error = await ErrorInvestigation.objects.aget(pk=error_id)
    assert error.status == "investigated" and error.model_used == "kimi-k2.6"
    assert error.investigation_result["root_cause"].startswith("stub analysis of Error type: ConnectionError")
    assert error.investigation_result["confidence"] == "medium"
    assert error.fix_recommendation["fix_steps"] == ["handle the failing case", "add a regression test"]
    assert error.investigation_duration_ms > 0
    [request] = stub.chat_requests()
    assert request["payload"]["response_format"] == {"type": "json_object"}


async def test_an_unparsable_answer_is_stored_raw_as_failed_and_a_retry_works(stub: Any) -> None:
    error_id = await asyncio.to_thread(make_error)
    stub.bad_json_answers = 1
    assert await services.error_investigate(error_id=error_id) is False
    error = await ErrorInvestigation.objects.aget(pk=error_id)
    assert error.status == "failed"
    assert error.investigation_result["raw"].startswith("I think the problem")
    assert "not JSON" in error.investigation_result["error"]
    assert await services.error_investigate(error_id=error_id) is True
    assert (await ErrorInvestigation.objects.aget(pk=error_id)).status == "investigated"


async def test_an_unavailable_investigator_fails_the_investigation_cleanly(settings: Any) -> None:
    settings.EXAI_INVESTIGATOR_MODEL, settings.KIMI_API_KEY = "kimi", ""
    error_id = await asyncio.to_thread(make_error)
    assert await services.error_investigate(error_id=error_id) is False
    error = await ErrorInvestigation.objects.aget(pk=error_id)
    assert error.status == "failed" and "KIMI_API_KEY" in error.investigation_result["error"]


async def test_only_one_investigation_of_an_error_runs_at_a_time(stub: Any) -> None:
    error_id = await asyncio.to_thread(make_error)
    results = await asyncio.gather(*(services.error_investigate(error_id=error_id) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert len(stub.chat_requests()) == 1


async def test_a_storm_of_one_error_from_a_tool_call_triggers_one_investigation(
    token: str, stub: Any, settings: Any
) -> None:
    worker = None
    if settings.REDIS_URL:
        # With Redis the investigation is queued for `runworker exai.background`: run that worker here.
        from channels.layers import get_channel_layer
        from channels.worker import Worker

        from exai_site.asgi import application

        worker_runner = Worker(application=application, channels=["exai.background"], channel_layer=get_channel_layer())
        worker = asyncio.ensure_future(worker_runner.handle())
    comm = await connected(token)
    for index in range(5):
        result = (
            await call(comm, "chat", {"prompt": "x [[stub:status=503]]", "model": "glm"}, request_id=f"r{index}")
        )[-1]
        assert result["error"]["code"] == "provider_error"
    # The flush runs on the server's loop shortly after the first occurrence, then the investigation.
    await wait_for(lambda: any(r["payload"].get("response_format") for r in stub.chat_requests()), timeout=5)
    async with asyncio.timeout(5):
        while not await ErrorInvestigation.objects.filter(status="investigated").aexists():
            await asyncio.sleep(0.02)
    error = await ErrorInvestigation.objects.aget()
    assert error.occurrence_count == 5
    assert error.error_context["provider"] == "glm" and error.error_context["model"] == "glm-5.2"
    assert error.error_context["tool"] == "chat"
    assert sum(1 for r in stub.chat_requests() if r["payload"].get("response_format")) == 1
    await comm.disconnect()
    if worker is not None:
        worker.cancel()


def test_the_command_investigates_pending_errors_and_one_by_id(stub: Any, capsys: Any) -> None:
    first, second = make_error("a"), make_error("b")
    out = StringIO()
    call_command("investigate_errors", "--pending", "--dry-run", stdout=out)
    assert f"would investigate error {first}" in out.getvalue()
    assert ErrorInvestigation.objects.filter(status="pending").count() == 2
    call_command("investigate_errors", "--pending", stdout=out)
    assert ErrorInvestigation.objects.filter(status="investigated").count() == 2
    assert "2/2" in capsys.readouterr().err  # tqdm's bar: done, rate, time left
    call_command("investigate_errors", "--id", str(second), stdout=out)
    assert len(stub.chat_requests()) == 3
