"""REST access to the tools: the same call path and result shape as `call_tool_res`."""

import asyncio
import math
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exai_site.schema import errors
from tools_app.services import CallOutcome, shutting_down_outcome, tool_call, tool_descriptors
from tools_app.turns import flush_turns

# How each error code of a tool call maps to an HTTP status.
HTTP_STATUS = {
    "invalid_request": 400,
    "invalid_arguments": 400,
    "unknown_tool": 404,
    "unauthorized": 401,
    "forbidden": 403,
    "overloaded": 429,
    "cancelled": 499,
    "internal": 500,
    "provider_error": 502,
    "provider_unavailable": 503,
    "shutting_down": 503,
    "timeout": 504,
}


async def _call_and_keep(**arguments: Any) -> CallOutcome:
    """A REST call answers once its turn is stored, not just after (tools_app/turns.py): the
    loop it runs on may end with the request (under WSGI, or Django's test client)."""
    try:
        return await tool_call(**arguments)
    finally:
        await flush_turns()


class ToolDescriptorSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    inputSchema = serializers.JSONField(help_text="The tool's arguments, as JSON Schema.")


class CallOutputSerializer(serializers.Serializer):
    type = serializers.CharField()
    text = serializers.CharField()
    metadata = serializers.JSONField(help_text="provider, model, continuation_id, cache_hit, latency_metrics, …")


class CallResultSerializer(serializers.Serializer):
    """The same shape as the EXAI protocol's call_tool_res."""

    outputs = CallOutputSerializer(many=True)
    text = serializers.CharField()


class ToolListView(APIView):
    @extend_schema_serializer(component_name="ToolList")
    class OutputSerializer(serializers.Serializer):
        tools = ToolDescriptorSerializer(many=True)

    @extend_schema(responses={200: OutputSerializer, **errors(401)})
    def get(self, request: Request) -> Response:
        return Response({"tools": tool_descriptors()})


class ToolCallView(APIView):
    @extend_schema_serializer(component_name="ToolCall")
    class InputSerializer(serializers.Serializer):
        arguments = serializers.JSONField(required=False, default=dict)
        request_id = serializers.CharField(required=False, max_length=200)

    @extend_schema(
        request=InputSerializer,
        responses={200: CallResultSerializer, **errors(*sorted(set(HTTP_STATUS.values())))},
    )
    def post(self, request: Request, name: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        try:
            outcome = async_to_sync(_call_and_keep)(
                user=request.user,
                name=name,
                arguments=data["arguments"],
                request_id=data.get("request_id") or uuid.uuid4().hex,
            )
        except asyncio.CancelledError:  # the server's drain stopped the call
            outcome = shutting_down_outcome()
        error = outcome.get("error")
        status = HTTP_STATUS.get(error["code"], 500) if error else 200
        response = Response(outcome, status=status)
        # A failed call's error was captured where it happened (on the tool path): Django's
        # "Bad Gateway: …" log line for this response would record it a second time.
        response._has_been_logged = True  # type: ignore[attr-defined]
        if error and "retry_after_s" in error:
            response["Retry-After"] = str(math.ceil(error["retry_after_s"]))
        return response
