"""Baselines and provider comparisons: real calls through the WebSocket path, measured on both ends.

A run asks the server for its tools, plans the calls (each tool with each model that it
takes, `iterations` times, prompts of given sizes), runs them with the project's own
reconnecting client over `concurrency` connections, and stores one BaselineSample per
call: the client's end-to-end time beside the server's `latency_metrics`. Reports group
the samples, give p50/p95/p99 and where the time went (slot waits, provider, the
gateway), and draw latency distributions as SVG.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from metrics_app.models import Baseline, BaselineSample, LatencySample
from metrics_app.services import percentile
from metrics_app.svg import cdf_chart
from tools_app.client import ExaiClient

ProgressCallback = Callable[[int, int], None]
_SIZE = re.compile(r"^(\d+)([km]?)$", re.I)


@dataclass(frozen=True)
class PlannedCall:
    tool: str
    arguments: dict[str, Any]
    model: str
    payload_bytes: int
    # A payload over the prompt limit goes the way users send large text: uploaded as a file
    # (before the call, not timed) and named in `files`.
    file_text: str | None = None


def parse_size(text: str) -> int:
    """`512`, `1k`, `100k`, `1m` as bytes."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"payload size {text!r} is not a number of bytes like 512, 1k or 1m")
    return int(match[1]) * {"": 1, "k": 1024, "m": 1024 * 1024}[match[2].lower()]


def filler(size: int, seed: str = "") -> str:
    """A prompt of `size` bytes that reads like a request and differs per seed (no cache hits)."""
    head = f"Summarise this text in one sentence ({seed}).\n"
    body = "The gateway routes tool calls to model providers and measures every step. "
    text = head + body * (max(0, size - len(head)) // len(body) + 1)
    return text[: max(size, len(head))]


def plan_calls(
    *, listing: list[dict[str, Any]], tools: list[str], models: list[str], iterations: int, sizes: list[int]
) -> list[PlannedCall]:
    """Every (tool, model, size) the tools accept, `iterations` times; ValueError naming an unknown tool."""
    schemas = {tool["name"]: tool["inputSchema"].get("properties", {}) for tool in listing}
    unknown = [tool for tool in tools if tool not in schemas]
    if unknown:
        raise ValueError(f"the server has no tool {', '.join(unknown)}; it has {', '.join(sorted(schemas))}")
    planned = []
    for tool in tools:
        properties = schemas[tool]
        for model in models if "model" in properties else [""]:
            for size in sizes if "prompt" in properties else [0]:
                for index in range(iterations):
                    arguments: dict[str, Any] = {}
                    text = filler(size, seed=f"{tool} {model} {index}")
                    as_file = "prompt" in properties and "files" in properties and size > settings.EXAI_MAX_PROMPT_CHARS
                    if "prompt" in properties:
                        arguments["prompt"] = "Summarise the attached file in one sentence." if as_file else text
                    if model:
                        arguments["model"] = model
                    planned.append(PlannedCall(tool, arguments, model, size, text if as_file else None))
    return planned


def caller(*, token: str | None, username: str | None) -> tuple[str, Any]:
    """The token to call with and its user when this server knows it (the baseline's owner)."""
    User = get_user_model()
    if username:
        user = User.objects.filter(username=username).first()
        if user is None:
            raise ValueError(f"no user {username!r} here; create one or pass --token")
        return str(AccessToken.for_user(user)), user
    if not token:
        raise ValueError("pass --token (from issue_token) or --user USERNAME")
    try:
        user_id = AccessToken(token)["user_id"]  # type: ignore[arg-type]
    except (TokenError, KeyError):
        return token, None  # a token of another server: the baseline has no owner here
    return token, User.objects.filter(pk=user_id).first()


async def baseline_run(
    *, baseline: Baseline, calls: list[PlannedCall], token: str, concurrency: int, on_progress: ProgressCallback | None
) -> int:
    """Run the planned calls over `concurrency` connections; store a sample per call; return how many failed."""
    pending = iter(calls)
    samples: list[BaselineSample] = []
    done = itertools.count(1)

    async def worker() -> None:
        async with ExaiClient(baseline.url, token) as client, httpx.AsyncClient(timeout=120) as http:
            for planned in pending:
                if planned.file_text is not None:
                    planned = await _with_uploaded_file(http, baseline.url, token, planned)
                started = time.perf_counter()
                reply = await client.call_tool(planned.tool, planned.arguments)
                samples.append(_sample(baseline, planned, reply, (time.perf_counter() - started) * 1000))
                if on_progress is not None:
                    on_progress(next(done), len(calls))

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(calls))))))
    await database_sync_to_async(BaselineSample.objects.bulk_create)(samples, batch_size=1000)
    return sum(1 for sample in samples if sample.status != LatencySample.OK)


async def _with_uploaded_file(http: httpx.AsyncClient, ws_url: str, token: str, planned: PlannedCall) -> PlannedCall:
    base = re.sub(r"^ws", "http", ws_url).rsplit("/ws", 1)[0]
    response = await http.post(
        f"{base}/api/files/",
        headers={"Authorization": f"Bearer {token}"},
        files={"file": ("payload.txt", (planned.file_text or "").encode(), "text/plain")},
    )
    response.raise_for_status()
    return PlannedCall(
        planned.tool, {**planned.arguments, "files": [response.json()["id"]]}, planned.model, planned.payload_bytes
    )


def _sample(baseline: Baseline, planned: PlannedCall, reply: dict[str, Any], end_to_end_ms: float) -> BaselineSample:
    error = reply.get("error")
    metadata = (reply.get("outputs") or [{}])[0].get("metadata") or {}
    metrics = metadata.get("latency_metrics") or {}
    return BaselineSample(
        baseline=baseline,
        tool=planned.tool,
        provider=metadata.get("provider") or "",
        model=metadata.get("model") or planned.model,
        payload_bytes=planned.payload_bytes,
        status=error["code"] if error else LatencySample.OK,
        end_to_end_ms=round(end_to_end_ms, 3),
        total_latency_ms=metrics.get("total_latency_ms", 0.0),
        global_sem_wait_ms=metrics.get("global_sem_wait_ms", 0.0),
        provider_sem_wait_ms=metrics.get("provider_sem_wait_ms", 0.0),
        processing_ms=metrics.get("processing_ms", 0.0),
    )


def baseline_finish(*, baseline: Baseline, failed: bool) -> None:
    baseline.status = Baseline.Status.FAILED if failed else Baseline.Status.FINISHED
    baseline.finished_at = timezone.now()
    baseline.save(update_fields=["status", "finished_at"])


def baseline_groups(*, baseline: Baseline, by: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per group: count, error rate, p50/p95/p99 of end-to-end and server time, and shares of time."""
    rows: dict[tuple[Any, ...], list[BaselineSample]] = defaultdict(list)
    for sample in baseline.samples.all():
        rows[tuple(getattr(sample, key) for key in by)].append(sample)
    groups = []
    for keys in sorted(rows, key=lambda k: tuple(str(v) for v in k)):
        samples = rows[keys]
        end_to_end = [s.end_to_end_ms for s in samples]
        spent = sum(end_to_end) or 1.0
        waiting = sum(s.global_sem_wait_ms + s.provider_sem_wait_ms for s in samples)
        provider = sum(s.processing_ms for s in samples)
        groups.append(
            {
                **dict(zip(by, keys, strict=True)),
                "count": len(samples),
                "error_rate": sum(1 for s in samples if s.status != LatencySample.OK) / len(samples),
                "end_to_end_ms": {
                    n: percentile(end_to_end, f) for n, f in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
                },
                "server_ms": {
                    n: percentile([s.total_latency_ms for s in samples], f)
                    for n, f in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
                },
                "share_waiting": waiting / spent,
                "share_provider": provider / spent,
                "share_gateway": max(0.0, 1 - (waiting + provider) / spent),
                "values": end_to_end,
            }
        )
    return groups


def _label(group: dict[str, Any], by: tuple[str, ...]) -> str:
    return " / ".join(str(group[key]) if key != "payload_bytes" else f"{group[key]:,} B" for key in by) or "all"


def report_table(groups: list[dict[str, Any]], by: tuple[str, ...]) -> list[str]:
    """The groups as a Markdown table (also what the commands print)."""
    header = (
        "| " + " | ".join(by) + " | calls | errors (%) | e2e p50 (ms) | e2e p95 (ms) | e2e p99 (ms) "
        "| waiting (% of e2e) | provider (% of e2e) | gateway (% of e2e) |"
    )
    lines = [header, "|" + " --- |" * (len(by) + 8)]
    for g in groups:
        cells = [str(g[key]) for key in by]
        e2e = g["end_to_end_ms"]
        lines.append(
            "| "
            + " | ".join(cells)
            + f" | {g['count']} | {g['error_rate'] * 100:.1f} | {e2e['p50']:.1f} | {e2e['p95']:.1f} | {e2e['p99']:.1f}"
            + f" | {g['share_waiting'] * 100:.0f} | {g['share_provider'] * 100:.0f} | {g['share_gateway'] * 100:.0f} |"
        )
    return lines


def baseline_report(*, baseline: Baseline, by: tuple[str, ...], out_dir: Path) -> list[Path]:
    """Write report.md and an SVG of the latency distributions to `out_dir`; return the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = baseline_groups(baseline=baseline, by=by)
    chart = out_dir / "latency.svg"
    chart.write_text(
        cdf_chart({_label(g, by): g["values"] for g in groups}, title=f"{baseline} — end-to-end latency, ms")
    )
    report = out_dir / "report.md"
    report.write_text(
        "\n".join(
            [
                f"# {baseline.get_kind_display().capitalize()} {baseline.pk}",
                "",
                f"Server {baseline.url}, {baseline.created:%Y-%m-%d %H:%M} UTC, parameters {baseline.parameters}.",
                "",
                "End-to-end times are the client's (ms); waiting, provider and gateway are shares of them.",
                "",
                *report_table(groups, by),
                "",
                f"![latency distributions]({chart.name})",
                "",
            ]
        )
    )
    return [report, chart]


def baseline_collect(
    *,
    kind: str,
    url: str,
    token: str,
    owner: Any,
    tools: list[str],
    models: list[str],
    sizes: list[int],
    iterations: int,
    concurrency: int,
    on_progress: ProgressCallback | None = None,
) -> Baseline:
    """Plan against the server's own tool list, run, and store the baseline (failed if the run broke off)."""
    from asgiref.sync import async_to_sync

    async def collect() -> Baseline:
        async with ExaiClient(url, token, reconnect=False) as client:
            listing = await client.list_tools()
        calls = plan_calls(listing=listing, tools=tools, models=models, iterations=iterations, sizes=sizes)
        parameters = {
            "tools": tools,
            "models": models,
            "payload_bytes": sizes,
            "iterations": iterations,
            "concurrency": concurrency,
            "calls": len(calls),
        }
        baseline = await Baseline.objects.acreate(kind=kind, owner=owner, url=url, parameters=parameters)
        try:
            await baseline_run(
                baseline=baseline, calls=calls, token=token, concurrency=concurrency, on_progress=on_progress
            )
        except BaseException:
            await database_sync_to_async(baseline_finish)(baseline=baseline, failed=True)
            raise
        await database_sync_to_async(baseline_finish)(baseline=baseline, failed=False)
        return baseline

    return async_to_sync(collect)()
