"""REST: JWT endpoints, the tool list and tool calls, with one error shape."""

from typing import Any

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(token: str | None = None) -> APIClient:
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_password_gets_an_access_and_refresh_token_that_verify_and_refresh(user: Any) -> None:
    client = APIClient()
    pair = client.post(
        "/api/auth/token/", {"username": "alice", "password": "alice-password-123"}, format="json"
    ).json()
    assert set(pair) == {"access", "refresh"}
    assert client.post("/api/auth/token/verify/", {"token": pair["access"]}, format="json").status_code == 200
    refreshed = client.post("/api/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json")
    assert refreshed.status_code == 200 and "access" in refreshed.json()


def test_a_wrong_password_is_401_in_the_one_error_shape(user: Any) -> None:
    response = APIClient().post("/api/auth/token/", {"username": "alice", "password": "wrong"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_the_tool_list_needs_a_token() -> None:
    response = client_for().get("/api/tools/")
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_the_tool_list_names_every_tool(token: str) -> None:
    tools = client_for(token).get("/api/tools/").json()["tools"]
    assert {"chat", "listmodels", "version", "status"} <= {tool["name"] for tool in tools}


def test_a_tool_call_returns_the_call_tool_res_shape(token: str) -> None:
    response = client_for(token).post("/api/tools/chat/call/", {"arguments": {"prompt": "rest"}}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["text"] == body["outputs"][0]["text"]
    assert body["text"].startswith("stub reply from kimi-k2.6: rest")
    assert body["outputs"][0]["metadata"]["latency_metrics"]["processing_ms"] > 0


@pytest.mark.parametrize(
    ("name", "body", "status", "code"),
    [
        ("chat", {"arguments": {"prompt": 1}}, 400, "invalid_arguments"),
        ("nope", {"arguments": {}}, 404, "unknown_tool"),
        ("chat", {"arguments": {"prompt": "x [[stub:status=400]]"}}, 502, "provider_error"),
    ],
)
def test_tool_errors_map_to_http_statuses(token: str, name: str, body: Any, status: int, code: int) -> None:
    response = client_for(token).post(f"/api/tools/{name}/call/", body, format="json")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_an_unconfigured_provider_is_503(token: str, settings: Any) -> None:
    settings.GLM_API_KEY = ""
    response = client_for(token).post(
        "/api/tools/chat/call/", {"arguments": {"prompt": "x", "model": "glm"}}, format="json"
    )
    assert response.status_code == 503
    assert "GLM_API_KEY" in response.json()["error"]["message"]


def test_a_malformed_json_body_is_400_in_the_one_error_shape(token: str) -> None:
    response = client_for(token).post("/api/tools/chat/call/", "{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
