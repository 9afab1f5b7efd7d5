"""OpenAPI pieces shared by every app's API: the bearer scheme and the one error shape."""

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
