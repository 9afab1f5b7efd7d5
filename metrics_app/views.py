"""Prometheus scrape endpoint and the live dashboard page."""

from datetime import timedelta

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework_simplejwt.tokens import AccessToken

from metrics_app import prometheus


async def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """`/metrics` in Prometheus text format: counts and timings of calls, no user data."""
    body, content_type = await prometheus.render()
    return HttpResponse(body, content_type=content_type)


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The live monitoring page; its socket authenticates with a short-lived token made for this staff user."""
    token = AccessToken.for_user(request.user)  # type: ignore[type-var]  # staff_member_required: a real user
    token.set_exp(lifetime=timedelta(hours=12))
    config = {"token": str(token), "interval_s": settings.EXAI_DASHBOARD_INTERVAL_S}
    return render(request, "dashboard.html", {"config": config})
