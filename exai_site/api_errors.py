"""One JSON shape for every REST error: {"error": {"code", "message", "details"}}.

DRF's exceptions pass through `exception_handler`; a URL that matches nothing and an
unhandled exception under /api/ (or /mcp) get the same shape from `not_found` and
`server_error` (Django's handler404 / handler500), never an HTML page or a stack trace.
"""

import math
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from exai_site.outages import RETRY_AFTER_S, unreachable_message, unreachable_service

_CODES = {
    status.HTTP_400_BAD_REQUEST: "invalid_request",
    status.HTTP_401_UNAUTHORIZED: "unauthorized",
    status.HTTP_403_FORBIDDEN: "forbidden",
    status.HTTP_404_NOT_FOUND: "not_found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    status.HTTP_413_REQUEST_ENTITY_TOO_LARGE: "too_large",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "invalid_request",
    status.HTTP_429_TOO_MANY_REQUESTS: "overloaded",
    status.HTTP_503_SERVICE_UNAVAILABLE: "overloaded",
}


def _from_django(exc: Exception) -> Exception:
    """Django's refusals of a request body, and an unreachable database or Redis, as the API errors
    they are (not an HTML 400 and an ERROR log, not a 500)."""
    if (service := unreachable_service(exc)) is not None:
        unavailable = exceptions.Throttled(wait=RETRY_AFTER_S, detail=unreachable_message(service))
        unavailable.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return unavailable
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        too_large = exceptions.APIException(f"the request body is over the limit of {limit:,} bytes", "too_large")
        too_large.status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        return too_large
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return exceptions.ParseError(str(exc))
    return exc


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = drf_exception_handler(_from_django(exc), context)
    if response is None:
        return None  # Django's 500 handling; never a stack trace to the client with DEBUG off
    if isinstance(exc, exceptions.AuthenticationFailed | exceptions.NotAuthenticated):
        response.status_code = status.HTTP_401_UNAUTHORIZED
    detail = response.data
    message = detail.get("detail") if isinstance(detail, dict) and "detail" in detail else "invalid request"
    details = None if isinstance(detail, dict) and set(detail) <= {"detail", "code", "messages"} else detail
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        details = {"retry_after_s": math.ceil(exc.wait)}
    response.data = {
        "error": {
            "code": _CODES.get(response.status_code, "error"),
            "message": str(message),
            "details": details,
        }
    }
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/mcp"))


def error_json(status_code: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "details": None}}, status=status_code)


@csrf_exempt  # a POST to a URL that does not exist is a 404, not a CSRF failure
def api_not_found(request: HttpRequest, *args: Any) -> JsonResponse:
    return error_json(404, "not_found", f"no such endpoint: {request.path}")


def not_found(request: HttpRequest, exception: Exception) -> Any:
    if _is_api(request):
        return api_not_found(request)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> Any:
    if _is_api(request):
        too_big = isinstance(exception, RequestDataTooBig)
        return error_json(413 if too_big else 400, "too_large" if too_big else "invalid_request", str(exception))
    return defaults.bad_request(request, exception)


def server_error(request: HttpRequest) -> Any:
    if _is_api(request):
        return error_json(500, "internal", "internal error; it has been logged")
    return defaults.server_error(request)
