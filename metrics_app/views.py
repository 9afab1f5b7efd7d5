"""Prometheus scrape endpoint."""

from django.http import HttpRequest, HttpResponse

from metrics_app import prometheus


async def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """`/metrics` in Prometheus text format: counts and timings of calls, no user data."""
    body, content_type = await prometheus.render()
    return HttpResponse(body, content_type=content_type)
