"""Staff REST API for errors: list and filter, read one, resolve / reopen / ignore / investigate."""

from typing import Any

from asgiref.sync import async_to_sync
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from errors_app import services
from errors_app.models import ErrorInvestigation
from exai_site.schema import errors


class ErrorOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ErrorInvestigation
        fields = [
            "id",
            "error_hash",
            "error_type",
            "error_message",
            "location",
            "occurrence_count",
            "created_at",
            "last_occurrence_at",
            "triage",
            "substatus",
            "resolved",
            "resolved_at",
            "resolution_notes",
            "status",
            "model_used",
            "investigation_duration_ms",
            "investigation_result",
            "fix_recommendation",
            "error_context",
        ]


class ErrorListView(APIView):
    permission_classes = [IsAdminUser]

    class FilterSerializer(serializers.Serializer):
        triage = serializers.ChoiceField(choices=ErrorInvestigation.Triage.choices, required=False)
        substatus = serializers.ChoiceField(choices=ErrorInvestigation.Substatus.choices, required=False)
        status = serializers.ChoiceField(choices=ErrorInvestigation.Status.choices, required=False)
        search = serializers.CharField(required=False, max_length=200)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)

    @extend_schema_serializer(component_name="ErrorList")
    class OutputSerializer(serializers.Serializer):
        errors = ErrorOutputSerializer(many=True)

    @extend_schema(
        operation_id="errors_list",
        parameters=[FilterSerializer],
        responses={200: OutputSerializer, **errors(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data: dict[str, Any] = filters.validated_data
        queryset: QuerySet[ErrorInvestigation] = ErrorInvestigation.objects.order_by("-last_occurrence_at")
        for field in ("triage", "substatus", "status"):
            if field in data:
                queryset = queryset.filter(**{field: data[field]})
        if "search" in data:
            term = data["search"]
            queryset = queryset.filter(Q(error_message__icontains=term) | Q(error_type__icontains=term))
        return Response({"errors": ErrorOutputSerializer(queryset[: data["limit"]], many=True).data})


class ErrorDetailView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema_serializer(component_name="ErrorAction")
    class InputSerializer(serializers.Serializer):
        action = serializers.ChoiceField(choices=["resolve", "reopen", "ignore", "investigate"])
        resolution_notes = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(responses={200: ErrorOutputSerializer, **errors(401, 403, 404)})
    def get(self, request: Request, error_id: int) -> Response:
        return Response(ErrorOutputSerializer(get_object_or_404(ErrorInvestigation, pk=error_id)).data)

    @extend_schema(request=InputSerializer, responses={200: ErrorOutputSerializer, **errors(400, 401, 403, 404)})
    def post(self, request: Request, error_id: int) -> Response:
        get_object_or_404(ErrorInvestigation, pk=error_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        action = serializer.validated_data["action"]
        if action == "resolve":
            services.error_resolve(error_id=error_id, notes=serializer.validated_data["resolution_notes"])
        elif action == "reopen":
            services.error_reopen(error_id=error_id)
        elif action == "ignore":
            services.error_ignore(error_id=error_id)
        elif services.error_mark_for_investigation(error_id=error_id):
            async_to_sync(services.error_schedule_investigation)(error_id=error_id)
        return Response(ErrorOutputSerializer(ErrorInvestigation.objects.get(pk=error_id)).data)
