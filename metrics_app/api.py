"""REST API for metrics: latency for staff (`/api/metrics/summary/?window=1h&group=…`), and
spend for everyone (`/api/metrics/spend/?days=30&group=…`: yours, or everyone's for staff)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exai_site.schema import errors
from metrics_app.services import GROUPS, PARTS, metrics_summary, parse_window
from metrics_app.spend import GROUPS as SPEND_GROUPS
from metrics_app.spend import spend_summary


def grouping(value: str, allowed: tuple[str, ...]) -> list[str]:
    """`tool,model` as a list of group keys, each once; a clear 400 naming any unknown one."""
    group = [part.strip() for part in value.split(",") if part.strip()]
    unknown = sorted(set(group) - set(allowed))
    if unknown:
        raise serializers.ValidationError(f"cannot group by {', '.join(unknown)}; use any of {', '.join(allowed)}")
    return list(dict.fromkeys(group))


class MetricsSummaryView(APIView):
    permission_classes = [IsAdminUser]

    class FilterSerializer(serializers.Serializer):
        window = serializers.CharField(required=False, default="1h", max_length=16)
        group = serializers.CharField(required=False, default=",".join(GROUPS), allow_blank=True, max_length=64)
        # Each part costs one sort of the window's values in the database: ask only for those you need.
        parts = serializers.CharField(required=False, default=",".join(PARTS), max_length=200)

        def validate_window(self, value: str) -> Any:
            try:
                return parse_window(value)
            except ValueError as exc:
                raise serializers.ValidationError(str(exc)) from None

        def validate_group(self, value: str) -> list[str]:
            return grouping(value, GROUPS)

        def validate_parts(self, value: str) -> tuple[str, ...]:
            parts = [part.strip() for part in value.split(",") if part.strip()]
            unknown = sorted(set(parts) - set(PARTS))
            if unknown or not parts:
                raise serializers.ValidationError(f"parts are any of {', '.join(PARTS)}")
            return tuple(dict.fromkeys(parts))

    @extend_schema_serializer(component_name="MetricsSummary")
    class OutputSerializer(serializers.Serializer):
        window = serializers.CharField()
        since = serializers.DateTimeField()
        count = serializers.IntegerField()
        error_rate = serializers.FloatField()
        latency = serializers.JSONField(help_text="Per latency part: {p50, p95, p99} in ms.")
        groups = serializers.JSONField(help_text="The same per group, with the group's keys.")

    @extend_schema(parameters=[FilterSerializer], responses={200: OutputSerializer, **errors(400, 401, 403)})
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        summary = metrics_summary(window=data["window"], group=data["group"], parts=data["parts"])
        return Response({"window": request.query_params.get("window", "1h"), **summary})


class SpendView(APIView):
    """What calls cost: `/api/metrics/spend/?days=30&group=tool,model,day[&user=ID]`.

    A user sees their own spend; staff see everyone's (`group=user` splits it per user, and
    `user=ID` narrows it to one)."""

    permission_classes = [IsAuthenticated]

    class FilterSerializer(serializers.Serializer):
        days = serializers.IntegerField(required=False, default=30, min_value=1, max_value=366)
        group = serializers.CharField(required=False, default="", allow_blank=True, max_length=64)
        user = serializers.IntegerField(required=False, min_value=0)

        def validate_group(self, value: str) -> list[str]:
            return grouping(value, SPEND_GROUPS)

    @extend_schema_serializer(component_name="Spend")
    class OutputSerializer(serializers.Serializer):
        since = serializers.DateField()
        until = serializers.DateField()
        calls = serializers.IntegerField(help_text="Calls that reached a provider.")
        tokens_in = serializers.IntegerField()
        cached_tokens = serializers.IntegerField(help_text="Of tokens_in, those the provider had cached.")
        tokens_out = serializers.IntegerField()
        reasoning_tokens = serializers.IntegerField(help_text="Of tokens_out, the model's reasoning.")
        cost_usd = serializers.FloatField(help_text="Of the priced calls, in US dollars.")
        unpriced_calls = serializers.IntegerField(help_text="Calls with a model that has no price: tokens, no cost.")
        groups = serializers.JSONField(help_text="The same per group, with the group's keys.")

    @extend_schema(parameters=[FilterSerializer], responses={200: OutputSerializer, **errors(400, 401, 403)})
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        staff = bool(request.user.is_staff)
        if not staff and ("user" in data or "user" in data["group"]):
            raise PermissionDenied("only staff see other users' spend; yours is what this answers without `user`")
        user_id = data.get("user") if staff else request.user.pk
        summary = spend_summary(days=data["days"], group=data["group"], user_id=user_id)
        return Response(summary)
