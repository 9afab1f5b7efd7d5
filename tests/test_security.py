"""Deployment safety and isolation: origins, `check --deploy`, one error shape, CSRF, owners' rows, staff only."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.contrib.auth.models import Permission
from django.test import Client, RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from exai_site.api_errors import server_error
from exai_site.auth import authenticate_token
from exai_site.models import IssuedToken
from files_app.services import file_ingest_text
from metrics_app.models import Baseline
from tests.conftest import ROOT, ServerProcess, access_token
from tests.helpers import call, communicator
from tools_app.models import Conversation

pytestmark = pytest.mark.django_db(transaction=True)


# --- Origins -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # not a browser: MCP clients, scripts
        ("http://127.0.0.1:8079", True),  # the server's own pages (the dashboard)
        ("http://127.0.0.1:6274", False),  # another program on this host: another port
        ("http://localhost:8079", False),  # the same port under another name is another origin
        ("https://app.example.com", True),  # listed in EXAI_ALLOWED_ORIGINS
        ("http://evil.example", False),
        ("http://127.0.0.1.evil.example", False),
        ("null", False),  # sandboxed frames, file:// pages
    ],
)
async def test_a_socket_from_a_page_on_a_foreign_origin_is_refused_at_the_handshake(
    user: Any, settings: Any, origin: str | None, allowed: bool
) -> None:
    settings.EXAI_ALLOWED_ORIGINS = ["https://app.example.com"]
    headers = [(b"host", b"127.0.0.1:8079"), *([(b"origin", origin.encode())] if origin else [])]
    for path in ("/ws", "/mcp"):
        comm = communicator(path, token=access_token(user))
        comm.scope["headers"] = [*comm.scope["headers"], *headers]
        connected, _ = await comm.connect()
        assert connected is allowed, (path, origin)
        await comm.disconnect()


def test_mcp_over_http_refuses_a_foreign_origin(user: Any) -> None:
    client = Client()
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"HTTP_AUTHORIZATION": f"Bearer {access_token(user)}", "HTTP_MCP_PROTOCOL_VERSION": "2025-06-18"}
    refused = client.post("/mcp", body, content_type="application/json", HTTP_ORIGIN="http://evil.example", **headers)
    assert refused.status_code == 403 and "evil.example" in refused.json()["error"]["message"]
    other_port = client.post(
        "/mcp",
        body,
        content_type="application/json",
        HTTP_HOST="localhost:8079",
        HTTP_ORIGIN="http://localhost:6274",
        **headers,
    )
    assert other_port.status_code == 403
    allowed = client.post(
        "/mcp",
        body,
        content_type="application/json",
        HTTP_HOST="localhost:8079",
        HTTP_ORIGIN="http://localhost:8079",
        **headers,
    )
    assert allowed.status_code == 200


# --- check --deploy ----------------------------------------------------------

PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_ALLOWED_HOSTS": "exai.example.com",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
}


def manage_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EXAI_"))}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_passes_with_the_documented_production_variables() -> None:
    result = manage_check(PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_passes_with_the_secret_key_from_a_file(tmp_path: Any) -> None:
    key = tmp_path / "secret_key"
    key.write_text(secrets.token_urlsafe(50) + "\n")
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_SECRET_KEY"}
    result = manage_check({**env, "DJANGO_SECRET_KEY_FILE": str(key)})
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"EXAI_HTTPS": "0"}, "security.W004"),  # no HSTS, cookies over plain http
    ],
)
def test_check_deploy_fails_without_a_production_setting(overrides: dict[str, str], complaint: str) -> None:
    env = {k: v for k, v in {**PRODUCTION, **overrides}.items() if v}
    result = manage_check(env)
    assert result.returncode != 0 and complaint in result.stdout + result.stderr


def test_a_production_process_refuses_to_start_without_a_secret_key(tmp_path: Any) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "DJANGO_SECRET_KEY"}
    result = manage_check(env)
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr
    # daphne runs no system checks: the settings themselves refuse, so the server never listens.
    server = ServerProcess({**env, "DJANGO_SECRET_KEY": ""})
    with pytest.raises(RuntimeError, match="exited"):
        server.start()


def test_a_development_server_signs_with_a_key_of_its_own_kept_private() -> None:
    from django.conf import settings

    key_file = ROOT / "var" / "secret_key"
    if os.environ.get("DJANGO_SECRET_KEY"):
        pytest.skip("this run sets its own DJANGO_SECRET_KEY")
    assert key_file.read_text().strip() == settings.SECRET_KEY and len(settings.SECRET_KEY) >= 50
    assert key_file.stat().st_mode & 0o077 == 0
    # The key that used to be written in settings.py signs nothing any more.
    forged = AccessToken()
    forged["user_id"] = 1
    public = jwt.encode(dict(forged.payload), "dev-insecure-exai-secret-key-change-me-in-production-0123456789")
    assert authenticate_token(public).user is None


# --- One error shape ---------------------------------------------------------


def test_an_unknown_api_url_is_a_json_404(token: str) -> None:
    client = APIClient()
    response = client.get("/api/nothing-here/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "no such endpoint: /api/nothing-here/", "details": None}
    }


def test_an_unhandled_error_under_api_is_a_json_500_without_a_trace() -> None:
    response = server_error(RequestFactory().get("/api/files/"))
    assert response.status_code == 500
    assert response.content == (
        b'{"error": {"code": "internal", "message": "internal error; it has been logged", "details": null}}'
    )


def test_a_body_nested_too_deeply_is_a_400(token: str) -> None:
    client = APIClient()
    body = '{"arguments": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client.post(
        "/api/tools/version/call/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


# --- CSRF on session-authenticated forms -------------------------------------


def test_a_session_authenticated_api_post_needs_the_csrf_token(user: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    refused = client.post("/api/tools/version/call/", {}, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    client.get("/admin/login/")  # sets the CSRF cookie, as any page with a form does
    csrf = client.cookies["csrftoken"].value
    allowed = client.post("/api/tools/version/call/", {}, content_type="application/json", HTTP_X_CSRFTOKEN=csrf)
    assert allowed.status_code == 200


def test_the_admin_login_form_needs_the_csrf_token(user: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "alice", "password": "alice-password-123"})
    assert response.status_code == 403


# --- Staff only --------------------------------------------------------------


@pytest.mark.parametrize("url", ["/admin/", "/dashboard/", "/admin/errors_app/errorinvestigation/"])
def test_the_admin_and_dashboard_send_non_staff_to_the_login_page(user: Any, url: str) -> None:
    client = Client()
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize("url", ["/api/errors/", "/api/metrics/summary/"])
def test_errors_and_metrics_apis_are_forbidden_to_non_staff(token: str, url: str) -> None:
    response = APIClient().get(url, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"


# --- Owners' rows in the admin -------------------------------------------------

OWNED = {
    "tools_app/conversation": "view_conversation",
    "files_app/filereference": "view_filereference",
    "files_app/storedfile": "view_storedfile",
    "metrics_app/baseline": "view_baseline",
    "exai_site/issuedtoken": "view_issuedtoken",
}


def own_rows(user: Any, marker: str) -> None:
    Conversation.objects.create(owner=user, tool=f"chat-{marker}", expires_at=Conversation.fresh_expiry())
    file_ingest_text(owner=user, text=f"secret code of {marker}", name=f"{marker}.py")
    Baseline.objects.create(owner=user, url=f"ws://{marker}")
    IssuedToken.objects.create(
        user=user, jti=f"jti-{marker}", label=f"{marker}-laptop", expires_at=timezone.now() + timedelta(days=1)
    )


def test_staff_who_are_not_superusers_see_only_their_own_rows_in_the_admin(
    user: Any, other_user: Any, admin_user: Any
) -> None:
    user.is_staff = True
    user.save()
    user.user_permissions.add(*Permission.objects.filter(codename__in=OWNED.values()))
    own_rows(user, "alice")
    own_rows(other_user, "bobby")
    client = Client()
    client.force_login(user)
    for model in OWNED:
        page = client.get(f"/admin/{model}/").content.decode()
        assert "alice" in page and "bobby" not in page, model
    superuser = Client()
    superuser.force_login(admin_user)
    for model in OWNED:
        page = superuser.get(f"/admin/{model}/").content.decode()
        assert "alice" in page and "bobby" in page, model


# --- A second user, surface by surface ---------------------------------------


async def test_another_users_thread_is_forbidden_over_mcp_sockets_and_rest(token: str, other_user: Any) -> None:
    from channels.db import database_sync_to_async

    theirs = await database_sync_to_async(Conversation.objects.create)(
        owner=other_user, tool="chat", expires_at=Conversation.fresh_expiry()
    )
    arguments = {"prompt": "continue", "continuation_id": str(theirs.pk)}
    exai = communicator("/ws", token=token)
    assert (await exai.connect())[0]
    assert (await call(exai, "chat", arguments))[-1]["error"]["code"] == "forbidden"
    await exai.disconnect()

    mcp = communicator("/mcp", token=token, header=True, subprotocols=["mcp"])
    assert (await mcp.connect())[0]
    await mcp.send_json_to(
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "chat", "arguments": arguments}}
    )
    reply = await mcp.receive_json_from(timeout=5)
    assert reply["result"]["isError"] is True and "forbidden" in reply["result"]["content"][0]["text"]
    await mcp.disconnect()

    rest = await database_sync_to_async(
        lambda: APIClient().post(
            "/api/tools/chat/call/", {"arguments": arguments}, format="json", HTTP_AUTHORIZATION=f"Bearer {token}"
        )
    )()
    assert rest.status_code == 403 and rest.json()["error"]["code"] == "forbidden"
