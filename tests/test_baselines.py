"""collect_baseline, analyze_baseline, compare_providers: real calls through a running server's /ws."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from metrics_app.baselines import filler, parse_size, plan_calls
from metrics_app.models import Baseline
from tests.conftest import ServerProcess, access_token

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_collect_baseline_measures_each_model_and_stores_its_samples(
    server: ServerProcess, user: Any, tmp_path: Path, stub: Any, capsys: Any
) -> None:
    output = run(
        "collect_baseline",
        "--url",
        f"{server.ws_url}/ws",
        "--user",
        "alice",
        "--tools",
        "chat,version",
        "--models",
        "kimi,glm-4.5",
        "--iterations",
        "3",
        "--concurrency",
        "2",
        "--out",
        str(tmp_path),
    )
    baseline = Baseline.objects.get()
    assert (baseline.owner, baseline.status, baseline.parameters["calls"]) == (user, "finished", 9)
    samples = list(baseline.samples.all())
    assert sorted({(s.tool, s.model) for s in samples}) == [
        ("chat", "glm-4.5"),
        ("chat", "kimi-k2.6"),
        ("version", ""),
    ]
    assert all(s.status == "ok" and s.end_to_end_ms >= s.total_latency_ms > 0 for s in samples)
    assert len(stub.chat_requests()) == 6
    progress = capsys.readouterr().err  # tqdm's bar: calls done, rate, time left
    assert "9/9" in progress and "call/s" in progress
    assert "| glm | chat | 3 | 0.0 |" in output and "| e2e p50 (ms) |" in output
    assert (tmp_path / "report.md").exists() and (tmp_path / "latency.svg").read_text().startswith("<svg")


def test_analyze_baseline_reports_errors_and_where_the_time_went(
    server: ServerProcess, user: Any, tmp_path: Path
) -> None:
    token = access_token(user)
    run("collect_baseline", "--url", f"{server.ws_url}/ws", "--token", token, "--iterations", "2", "-v", "0")
    output = run("analyze_baseline", "--out", str(tmp_path))
    assert "| kimi | chat | 2 | 0.0 |" in output  # analyze_baseline with no id: the latest
    report = (tmp_path / "report.md").read_text()
    assert "e2e p95 (ms)" in report and "errors (%)" in report and "![latency distributions](latency.svg)" in report
    svg = (tmp_path / "latency.svg").read_text()
    assert "kimi / chat (n=2)" in svg and svg.count("<polyline") == 1


def test_compare_providers_sends_each_payload_size_to_each_model(
    server: ServerProcess, user: Any, tmp_path: Path, stub: Any
) -> None:
    output = run(
        "compare_providers",
        "--url",
        f"{server.ws_url}/ws",
        "--user",
        "alice",
        "--models",
        "kimi-k2.6,glm-4.6",
        "--payload-sizes",
        "1k,10k",
        "--iterations",
        "2",
        "--out",
        str(tmp_path),
    )
    baseline = Baseline.objects.get(kind="comparison")
    assert sorted({(s.model, s.payload_bytes) for s in baseline.samples.all()}) == [
        ("glm-4.6", 1024),
        ("glm-4.6", 10240),
        ("kimi-k2.6", 1024),
        ("kimi-k2.6", 10240),
    ]
    sizes = sorted(len(r["payload"]["messages"][-1]["content"]) for r in stub.chat_requests())
    assert sizes == [1024] * 4 + [10240] * 4
    assert "| glm-4.6 | 10240 | 2 |" in output and (tmp_path / "report.md").exists()


def test_the_commands_fail_clearly(server: ServerProcess, user: Any) -> None:
    with pytest.raises(CommandError, match="no tool thinkdeeper"):
        run("collect_baseline", "--url", f"{server.ws_url}/ws", "--user", "alice", "--tools", "thinkdeeper")
    with pytest.raises(CommandError, match="--token"):
        run("collect_baseline", "--url", f"{server.ws_url}/ws")
    with pytest.raises(CommandError, match="is the server running"):
        run("collect_baseline", "--url", "ws://127.0.0.1:9/ws", "--user", "alice")
    with pytest.raises(CommandError, match="payload size"):
        run(
            "compare_providers",
            "--url",
            f"{server.ws_url}/ws",
            "--user",
            "alice",
            "--models",
            "kimi",
            "--payload-sizes",
            "big",
        )
    with pytest.raises(CommandError, match="no baselines yet"):
        run("analyze_baseline")


def test_the_latency_axis_starts_near_the_fastest_call_when_all_are_slow() -> None:
    from metrics_app.svg import cdf_chart, latency_axis

    assert latency_axis([5012.0, 5500.0, 6100.0]) == (4000.0, 6100.0)  # not squeezed against the right
    assert latency_axis([3.0, 40.0, 900.0]) == (0.0, 900.0)  # spread out: from zero
    assert latency_axis([]) == (0.0, 1.0)
    svg = cdf_chart({"slow": [5012.0, 5500.0, 6100.0]}, title="t")
    assert ">4000</text>" in svg and ">6100</text>" in svg and ">0</text>" not in svg


def test_planning_follows_the_tools_schemas() -> None:
    listing = [
        {"name": "chat", "inputSchema": {"properties": {"prompt": {}, "model": {}}}},
        {"name": "status", "inputSchema": {"properties": {}}},
    ]
    planned = plan_calls(listing=listing, tools=["chat", "status"], models=["a", "b"], iterations=2, sizes=[100])
    assert [(p.tool, p.model) for p in planned] == [("chat", "a")] * 2 + [("chat", "b")] * 2 + [("status", "")] * 2
    assert planned[-1].arguments == {} and len(planned[0].arguments["prompt"]) == 100
    assert parse_size("10k") == 10240 and parse_size("1m") == 1048576 and len(filler(5000)) == 5000
