"""The front page, the Prometheus scrape endpoint and the live dashboard page."""

import json
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from metrics_app import prometheus
from metrics_app.health import failing_dependencies
from tools_app.providers import all_providers


async def home(request: HttpRequest) -> HttpResponse:
    """`/`: what this server is, whether it is healthy, where to go next, and the lines that
    connect an MCP client to it — filled in with this server's own address (the token is a
    placeholder: the page is public)."""
    base = request.build_absolute_uri("/").rstrip("/")
    websocket = ("wss" if request.is_secure() else "ws") + base.removeprefix("https").removeprefix("http")
    python = str(Path(sys.prefix) / "bin" / "python")
    manage = str(Path(settings.BASE_DIR) / "manage.py")
    desktop = {
        "mcpServers": {
            "exai": {
                "command": python,
                "args": [manage, "mcp_stdio", "--url", f"{websocket}/ws", "--token", "<token>"],
            }
        }
    }
    context = {
        "base": base,
        "failing": await failing_dependencies(),
        "providers": [
            {"label": provider.label, "configured": provider.configured, "hint": provider.enable_hint}
            for provider in all_providers()
        ],
        "claude_code": f'claude mcp add --transport http exai {base}/mcp --header "Authorization: Bearer <token>"',
        "claude_desktop": json.dumps(desktop, indent=2),
        "websocket_mcp": f"{websocket}/mcp",
        "token_command": f"{python} {manage} issue_token <username> --days 90 --label laptop",
    }
    return render(request, "home.html", context)


async def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """`/metrics` in Prometheus text format: counts and timings of calls, no user data."""
    body, content_type = await prometheus.render()
    return HttpResponse(body, content_type=content_type)


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The live monitoring page. Its socket authenticates with the admin session the page was loaded in
    (the browser sends the cookie; the origin check keeps other sites' pages out), so no token is
    ever put in the page, and logging out or losing staff ends the feed."""
    config = {"interval_s": settings.EXAI_DASHBOARD_INTERVAL_S}
    return render(request, "dashboard.html", {"config": config})
