"""REST for files: upload (multipart, streamed) and list, read, download, delete the caller's own."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from django.http import FileResponse, HttpRequest
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exai_site.schema import errors
from files_app import services
from files_app.blobs import blob_open
from files_app.models import FileReference, ProviderFileUpload
from files_app.uploads import HashedUpload, HashingUploadHandler
from tools_app.models import Conversation


class ProviderCopySerializer(serializers.Serializer):
    provider = serializers.CharField()
    status = serializers.CharField()
    provider_file_id = serializers.CharField()


class FileOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    size = serializers.IntegerField(source="stored_file.size")
    content_type = serializers.CharField()
    sha256 = serializers.CharField(source="stored_file.sha256")
    continuation_id = serializers.UUIDField(source="conversation_id", allow_null=True)
    created = serializers.DateTimeField()
    provider_copies = serializers.SerializerMethodField()

    @extend_schema_field(ProviderCopySerializer(many=True))
    def get_provider_copies(self, reference: FileReference) -> list[dict[str, Any]]:
        return [
            {"provider": copy.provider, "status": copy.status, "provider_file_id": copy.provider_file_id}
            for copy in reference.provider_copies.all()
        ]


def _references(request: Request) -> Any:
    # Only the copies this user's calls used (dedup is invisible: not those made for others' uploads).
    copies = Prefetch("provider_copies", queryset=ProviderFileUpload.objects.order_by("provider"))
    return FileReference.objects.owned_by(request.user).select_related("stored_file").prefetch_related(copies)


def _own_reference(request: Request, file_id: Any) -> FileReference:
    """The caller's file; anyone else's is as unknown as a file that never existed."""
    reference = _references(request).filter(pk=file_id).first()
    if reference is None:
        raise NotFound("no such file among yours.")
    return reference


class FileListView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    class FilterSerializer(serializers.Serializer):
        limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)

    class InputSerializer(serializers.Serializer):
        continuation_id = serializers.UUIDField(required=False)

    @extend_schema_serializer(component_name="FileUpload")
    class UploadSerializer(serializers.Serializer):
        """The multipart body (the file is read by the upload handler, hashed as it streams)."""

        file = serializers.FileField()
        continuation_id = serializers.UUIDField(required=False, help_text="Tie the file to one of your threads.")

    @extend_schema_serializer(component_name="FileList")
    class ListSerializer(serializers.Serializer):
        files = FileOutputSerializer(many=True)

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        # Installed before anything can read the body, so the file is hashed as it is parsed.
        self.upload_handler = HashingUploadHandler(request)
        request.upload_handlers = [self.upload_handler]
        return super().initialize_request(request, *args, **kwargs)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        self.upload_handler.discard()  # whatever ingest did not take, on every outcome
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        operation_id="files_list", parameters=[FilterSerializer], responses={200: ListSerializer, **errors(400, 401)}
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        references = _references(request).order_by("-created")[: filters.validated_data["limit"]]
        return Response({"files": FileOutputSerializer(references, many=True).data})

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={201: FileOutputSerializer, **errors(400, 401, 413)},
    )
    def post(self, request: Request) -> Response:
        uploads = request.FILES.getlist("file")
        if len(uploads) != 1 or not isinstance(uploads[0], HashedUpload):
            raise ValidationError({"file": ["send exactly one file, as the multipart/form-data field `file`."]})
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = None
        if thread := serializer.validated_data.get("continuation_id"):
            conversation = Conversation.objects.filter(pk=thread, owner=request.user).first()
            if conversation is None:
                raise ValidationError({"continuation_id": ["no such conversation among yours."]})
        upload = uploads[0]
        reference = services.file_ingest(
            owner=request.user,
            blob=upload.blob,
            name=upload.name or "upload",
            content_type=upload.content_type or "",
            conversation=conversation,
        )
        return Response(
            FileOutputSerializer(_own_reference(request, reference.pk)).data, status=status.HTTP_201_CREATED
        )


class FileByHashView(APIView):
    """Reference content you already hold by its SHA-256, without sending it again.

    201 with the new reference (named as given) when one of your files has that content;
    404 when none does — then upload the bytes with `POST /api/files/`. Only your own files
    count: whether anyone else uploaded the same content is never revealed."""

    class InputSerializer(serializers.Serializer):
        sha256 = serializers.RegexField(r"^[0-9a-f]{64}$", help_text="Lower-case hex SHA-256 of the content.")
        name = serializers.CharField(max_length=255)
        content_type = serializers.CharField(max_length=200, required=False, default="")
        continuation_id = serializers.UUIDField(required=False, help_text="Tie the file to one of your threads.")

    @extend_schema(
        operation_id="files_by_hash",
        request=InputSerializer,
        responses={201: FileOutputSerializer, **errors(400, 401, 404)},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        conversation = None
        if thread := data.get("continuation_id"):
            conversation = Conversation.objects.filter(pk=thread, owner=request.user).first()
            if conversation is None:
                raise ValidationError({"continuation_id": ["no such conversation among yours."]})
        reference = services.file_reference_by_hash(
            owner=request.user,
            sha256=data["sha256"],
            name=data["name"],
            content_type=data["content_type"],
            conversation=conversation,
        )
        if reference is None:
            raise NotFound("none of your files has this content; upload it with POST /api/files/.")
        return Response(
            FileOutputSerializer(_own_reference(request, reference.pk)).data, status=status.HTTP_201_CREATED
        )


class FileDetailView(APIView):
    @extend_schema(responses={200: FileOutputSerializer, **errors(401, 404)})
    def get(self, request: Request, file_id: str) -> Response:
        return Response(FileOutputSerializer(_own_reference(request, file_id)).data)

    @extend_schema(responses={204: OpenApiResponse(description="Your reference is dropped."), **errors(401, 404)})
    def delete(self, request: Request, file_id: str) -> Response:
        """Drop the caller's reference; the blob goes with the last one, after the grace period."""
        services.file_reference_drop(owner=request.user, file_id=_own_reference(request, file_id).pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FileContentView(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **errors(401, 404)})
    def get(self, request: Request, file_id: str) -> FileResponse:
        reference = _own_reference(request, file_id)
        stored = reference.stored_file
        return FileResponse(
            blob_open(stored.blob_name),
            as_attachment=True,
            filename=reference.name,
            content_type=reference.content_type or "application/octet-stream",
        )
