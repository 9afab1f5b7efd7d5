"""/api/schema/ (OpenAPI 3, by drf-spectacular) describes every REST endpoint, and real answers match it."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from django.contrib.staticfiles import finders
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from rest_framework.test import APIClient

from tests.conftest import access_token

pytestmark = pytest.mark.django_db(transaction=True)

PATHS = {
    "/api/auth/token/",
    "/api/auth/token/refresh/",
    "/api/auth/token/verify/",
    "/api/auth/logout/",
    "/api/tools/",
    "/api/tools/{name}/call/",
    "/api/files/",
    "/api/files/{file_id}/",
    "/api/files/{file_id}/content/",
    "/api/errors/",
    "/api/errors/{error_id}/",
    "/api/metrics/summary/",
}


def schema() -> dict[str, Any]:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def validate(document: dict[str, Any], component: str, instance: Any) -> None:
    """Check an answer against a component of the schema (OpenAPI 3.1 schemas are JSON Schema 2020-12)."""
    registry = Registry().with_resource("urn:exai", Resource.from_contents(document, default_specification=DRAFT202012))
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"urn:exai#/components/schemas/{component}"}, registry=registry
    )
    validator.validate(instance)


def test_the_schema_generates_without_a_warning_so_every_endpoint_is_described(tmp_path: Path) -> None:
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"), stderr=StringIO()
    )
    assert "openapi: 3" in (tmp_path / "schema.yaml").read_text()


def test_the_served_schema_lists_every_rest_endpoint_and_the_bearer_scheme() -> None:
    document = schema()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) >= PATHS
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_the_docs_name_every_tool_with_its_argument_schema_and_every_operation_has_a_summary() -> None:
    from tools_app.tools import enabled_tools

    document = schema()
    for name, tool in enabled_tools().items():
        operation = document["paths"][f"/api/tools/{name}/call/"]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        reference = body["properties"]["arguments"]["$ref"].removeprefix("#/components/schemas/")
        arguments = document["components"]["schemas"][reference]
        assert arguments["properties"] == tool.input_schema["properties"]
        assert operation["summary"].startswith(f"Call {name}: ")
    validate(document, "ToolArguments_chat", {"prompt": "hello", "model": "kimi"})
    with pytest.raises(jsonschema.ValidationError):
        validate(document, "ToolArguments_chat", {"model": "kimi"})  # no prompt
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"


def test_the_docs_page_loads_its_assets_from_this_server() -> None:
    page = APIClient().get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")


def test_real_answers_match_their_schemas(user: Any) -> None:
    document = schema()
    client = APIClient()
    validate(document, "ErrorResponse", client.get("/api/files/").json())
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    uploaded = client.post("/api/files/", {"file": SimpleUploadedFile("a.txt", b"schema")})
    validate(document, "FileOutput", uploaded.json())
    validate(document, "FileList", client.get("/api/files/").json())
    validate(document, "ToolList", client.get("/api/tools/").json())
    called = client.post("/api/tools/chat/call/", {"arguments": {"prompt": "hi"}}, format="json")
    validate(document, "CallResult", called.json())
    refused = client.post("/api/tools/chat/call/", {"arguments": {"prompt": 1}}, format="json")
    validate(document, "ErrorResponse", refused.json())
