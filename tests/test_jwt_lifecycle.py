"""JWT lifecycle: short access tokens, single-use refresh tokens, logout, and every forged or stale token refused."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from tests.conftest import access_token
from tests.helpers import call, communicator, connected

pytestmark = pytest.mark.django_db(transaction=True)


def login(client: APIClient) -> dict[str, str]:
    response = client.post("/api/auth/token/", {"username": "alice", "password": "alice-password-123"}, format="json")
    assert response.status_code == 200
    return response.json()


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forged(user: Any) -> dict[str, str]:
    """Tokens an attacker could make: a changed signature, `alg: none`, a changed user id, an expired one."""
    good = access_token(user)
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    expired = AccessToken.for_user(user)
    expired.set_exp(lifetime=timedelta(seconds=-1))
    return {
        "tampered signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "another user id": f"{header}.{b64({**claims, 'user_id': str(int(claims['user_id']) + 1)})}.{signature}",
        "expired": str(expired),
        "garbage": "not-a-token",
    }


def test_access_tokens_from_a_password_last_fifteen_minutes(user: Any) -> None:
    access = AccessToken(login(APIClient())["access"])  # type: ignore[arg-type]
    assert access["exp"] - access["iat"] == 15 * 60


def test_a_refresh_token_is_single_use(user: Any) -> None:
    client = APIClient()
    first = login(client)["refresh"]
    rotated = client.post("/api/auth/token/refresh/", {"refresh": first}, format="json").json()
    assert set(rotated) == {"access", "refresh"} and rotated["refresh"] != first
    reused = client.post("/api/auth/token/refresh/", {"refresh": first}, format="json")
    assert reused.status_code == 401 and reused.json()["error"]["code"] == "unauthorized"
    assert client.post("/api/auth/token/refresh/", {"refresh": rotated["refresh"]}, format="json").status_code == 200


def test_logout_blacklists_the_refresh_token(user: Any) -> None:
    client = APIClient()
    refresh = login(client)["refresh"]
    assert client.post("/api/auth/logout/", {"refresh": refresh}, format="json").status_code == 200
    after = client.post("/api/auth/token/refresh/", {"refresh": refresh}, format="json")
    assert after.status_code == 401
    assert client.post("/api/auth/logout/", {"refresh": "nonsense"}, format="json").status_code == 401


@pytest.mark.parametrize("sent_as", ["header", "body"])
async def test_logout_revokes_the_access_token_too_on_every_transport(user: Any, sent_as: str) -> None:
    client = APIClient()
    tokens = await asyncio.to_thread(login, client)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert (await asyncio.to_thread(client.get, "/api/tools/")).status_code == 200
    body = {"refresh": tokens["refresh"], **({"access": tokens["access"]} if sent_as == "body" else {})}
    if sent_as == "body":
        client.credentials()
    assert (await asyncio.to_thread(client.post, "/api/auth/logout/", body, format="json")).status_code == 200

    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    after = await asyncio.to_thread(client.get, "/api/tools/")
    assert after.status_code == 401 and "revoked" in after.json()["error"]["message"]
    comm = await connected()
    await comm.send_json_to({"op": "hello", "token": tokens["access"]})
    assert "revoked" in (await comm.receive_json_from())["error"]["message"]
    await comm.disconnect()


def test_a_refresh_token_of_a_deactivated_user_gives_no_new_access(user: Any) -> None:
    client = APIClient()
    refresh = login(client)["refresh"]
    user.is_active = False
    user.save()
    assert client.post("/api/auth/token/refresh/", {"refresh": refresh}, format="json").status_code == 401


def test_forged_and_stale_tokens_are_refused_on_rest(user: Any) -> None:
    for name, token in forged(user).items():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        response = client.get("/api/files/")
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] == "unauthorized", name


@pytest.mark.parametrize("gone", ["inactive", "deleted"])
def test_a_token_of_an_inactive_or_deleted_user_is_refused(user: Any, gone: str) -> None:
    token = access_token(user)
    if gone == "deleted":
        user.delete()
    else:
        user.is_active = False
        user.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/tools/").status_code == 401


async def test_forged_and_stale_tokens_are_refused_on_both_websockets(user: Any) -> None:
    for name, token in forged(user).items():
        comm = await connected(token)
        try:
            reply = (await call(comm, "version", {}, request_id="r"))[-1]
            assert reply["error"]["code"] == "unauthorized", name
        finally:
            await comm.disconnect()
        mcp = communicator("/mcp", token=token, header=True, subprotocols=["mcp"])
        assert (await mcp.connect())[0]
        await mcp.send_json_to({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert (await mcp.receive_json_from())["error"]["code"] == -32001, name
        await mcp.disconnect()


def short_lived(user: Any, seconds: float) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token)


async def test_an_open_exai_socket_whose_token_expires_is_refused_on_its_next_call_and_closed(user: Any) -> None:
    comm = await connected(short_lived(user, 2))
    assert "outputs" in (await call(comm, "version", {}, request_id="before"))[-1]
    await asyncio.sleep(2.1)
    reply = (await call(comm, "version", {}, request_id="after"))[-1]
    assert reply["error"]["code"] == "unauthorized" and "expired" in reply["error"]["message"]
    assert (await comm.receive_output())["code"] == 4401


async def test_an_open_mcp_socket_whose_token_expires_is_refused_on_its_next_request_and_closed(
    user: Any, settings: Any
) -> None:
    settings.EXAI_TOKEN_RECHECK_S = 3600  # expiry is noticed at once, not at the next periodic re-check
    comm = communicator("/mcp", token=short_lived(user, 2), header=True, subprotocols=["mcp"])
    assert (await comm.connect())[0]
    await comm.send_json_to({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert "result" in await comm.receive_json_from()
    await asyncio.sleep(2.1)
    await comm.send_json_to({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    reply = await comm.receive_json_from()
    assert reply["error"]["code"] == -32001 and "expired" in reply["error"]["message"].lower()
    assert (await comm.receive_output())["code"] == 4401
