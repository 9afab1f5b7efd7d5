"""OpenAPI pieces shared by every app's API: the bearer scheme and the one error shape."""

from typing import Any

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class RevocableJWTScheme(SimpleJWTScheme):
    """Our simplejwt subclass authenticates exactly as simplejwt does, as a bearer token."""

    target_class = "exai_site.auth.RevocableJWTAuthentication"
    name = "bearerAuth"


# Spelled out: drf-spectacular renders an any-or-null field as oneOf [{}, null], which null never satisfies.
@extend_schema_field({"type": ["object", "array", "null"], "description": "Per-field problems, when there are any."})
class DetailsField(serializers.JSONField):
    pass


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = DetailsField(required=False)


class ErrorResponseSerializer(serializers.Serializer):
    """Every REST error: {"error": {"code", "message", "details"}}."""

    error = ErrorSerializer()


def errors(*statuses: int) -> dict[int, type[ErrorResponseSerializer]]:
    """`responses=` entries for the error statuses an endpoint answers."""
    return dict.fromkeys(statuses, ErrorResponseSerializer)


def _error_response(description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        **extra,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }


def add_common_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Errors every REST operation can answer, documented once here rather than on each view:
    429 from the rate limits (exai_site.throttling), 401 from authentication (a missing,
    bad or revoked token; wrong credentials on the token endpoints) and 400 from a malformed
    body or query."""
    too_many = _error_response(
        "A rate limit refused the request (`overloaded`); retry after `Retry-After` seconds.",
        headers={"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
    )
    unauthorized = _error_response("No valid access token (or wrong credentials).")
    invalid = _error_response("The body or query is malformed.")
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.setdefault("429", too_many)
            responses.setdefault("401", unauthorized)
            if "requestBody" in operation or operation.get("parameters"):
                responses.setdefault("400", invalid)
    return result


def add_summaries(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Every operation gets a summary (the line the docs page lists it by): the first sentence
    of its description (the view's docstring), else its operation id in words."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if operation.get("summary"):
                continue
            description = (operation.get("description") or "").strip()
            first = description.split("\n\n", 1)[0].replace("\n", " ").split(". ", 1)[0].rstrip(".")
            words = operation.get("operationId", "").replace("_", " ")
            operation["summary"] = first[:120] if first else words.capitalize()
    return result
