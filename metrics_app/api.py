"""Staff REST API for latency: `/api/metrics/summary/?window=1h&group=tool,provider,model`."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metrics_app.services import GROUPS, metrics_summary, parse_window


class MetricsSummaryView(APIView):
    permission_classes = [IsAdminUser]

    class FilterSerializer(serializers.Serializer):
        window = serializers.CharField(required=False, default="1h", max_length=16)
        group = serializers.CharField(required=False, default=",".join(GROUPS), allow_blank=True, max_length=64)

        def validate_window(self, value: str) -> Any:
            try:
                return parse_window(value)
            except ValueError as exc:
                raise serializers.ValidationError(str(exc)) from None

        def validate_group(self, value: str) -> list[str]:
            group = [part.strip() for part in value.split(",") if part.strip()]
            unknown = sorted(set(group) - set(GROUPS))
            if unknown:
                raise serializers.ValidationError(
                    f"cannot group by {', '.join(unknown)}; use any of {', '.join(GROUPS)}"
                )
            return list(dict.fromkeys(group))

    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        summary = metrics_summary(window=filters.validated_data["window"], group=filters.validated_data["group"])
        return Response({"window": request.query_params.get("window", "1h"), **summary})
