"""An exception escaping a view (plain Django or DRF) becomes one error occurrence, and the client sees no trace."""

from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from errors_app.capture import flush_errors
from errors_app.models import ErrorInvestigation

pytestmark = pytest.mark.django_db(transaction=True)


def boom(request: HttpRequest) -> HttpResponse:
    raise ZeroDivisionError("bad ratio for order 1234")


class ApiBoom(APIView):
    permission_classes: list[Any] = []
    authentication_classes: list[Any] = []

    def get(self, request: Request) -> Response:
        raise LookupError("no shard for tenant 99")


urlpatterns = [path("boom/", boom), path("api-boom/", ApiBoom.as_view())]


@pytest.mark.urls("tests.test_errors_views")
@pytest.mark.parametrize(
    ("url", "error_type", "location"),
    [
        ("/boom/", "ZeroDivisionError", "tests/test_errors_views.py in boom"),
        ("/api-boom/", "LookupError", "tests/test_errors_views.py in get"),
    ],
)
def test_an_exception_in_a_view_is_captured_once(settings: Any, url: str, error_type: str, location: str) -> None:
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 500
        assert b"Traceback" not in response.content
    flush_errors()
    [error] = ErrorInvestigation.objects.all()
    assert (error.error_type, error.location, error.occurrence_count) == (error_type, location, 2)
    assert "<n>" in error.error_message
