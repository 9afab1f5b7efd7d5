"""Prometheus scrape endpoint and the live dashboard page."""

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from metrics_app import prometheus


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
