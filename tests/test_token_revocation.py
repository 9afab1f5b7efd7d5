"""Long-lived tokens from issue_token are recorded and revocable, and a revoked token stops working everywhere."""

import asyncio
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import AsyncClient
from rest_framework.test import APIClient

from exai_site.models import IssuedToken
from tests.helpers import call, communicator, connected

pytestmark = pytest.mark.django_db(transaction=True)


def issue(username: str = "alice", *extra: str) -> str:
    out = StringIO()
    call_command("issue_token", username, *extra, stdout=out)
    return out.getvalue().strip()


def revoke(*args: str) -> str:
    out = StringIO()
    call_command("revoke_token", *args, stdout=out)
    return out.getvalue()


def test_issue_token_records_the_token_and_revoke_token_lists_and_revokes_it(user: Any) -> None:
    issue("alice", "--label", "claude desktop")
    [record] = IssuedToken.objects.all()
    assert (record.user, record.label, record.revoked_at) == (user, "claude desktop", None)
    assert record.jti in revoke("alice", "--list") and "active" in revoke("alice", "--list")
    assert "would revoke 1 token(s)" in revoke("alice", "--dry-run")
    assert IssuedToken.objects.active().count() == 1
    assert "revoked 1 token(s)" in revoke("alice")
    assert IssuedToken.objects.active().count() == 0


def test_revoking_one_token_by_id_leaves_the_others(user: Any) -> None:
    issue(), issue()
    first, second = IssuedToken.objects.order_by("created")
    revoke("alice", "--jti", first.jti)
    assert list(IssuedToken.objects.active()) == [second]
    with pytest.raises(CommandError, match="no token"):
        revoke("alice", "--jti", "nope")
    with pytest.raises(CommandError, match="no user"):
        revoke("mallory")


async def test_a_revoked_token_is_refused_on_every_transport(user: Any) -> None:
    token = await asyncio.to_thread(issue)
    await asyncio.to_thread(revoke, "alice")

    comm = await connected()
    await comm.send_json_to({"op": "hello", "token": token})
    assert "revoked" in (await comm.receive_json_from())["error"]["message"]

    http = await AsyncClient().post(
        "/mcp",
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert http.status_code == 401 and "revoked" in http.json()["error"]["message"]

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    rest = await asyncio.to_thread(client.get, "/api/tools/")
    assert rest.status_code == 401


async def test_an_open_socket_stops_being_served_once_its_token_is_revoked(user: Any, settings: Any) -> None:
    settings.EXAI_TOKEN_RECHECK_S = 0
    token = await asyncio.to_thread(issue)
    comm = await connected(token)
    assert "outputs" in (await call(comm, "version", {}, request_id="before"))[-1]
    await asyncio.to_thread(revoke, "alice")
    reply = (await call(comm, "version", {}, request_id="after"))[-1]
    assert reply["error"]["code"] == "unauthorized" and "revoked" in reply["error"]["message"]
    assert (await comm.receive_output())["code"] == 4401


async def test_an_open_mcp_socket_is_refused_and_closed_once_its_token_is_revoked(user: Any, settings: Any) -> None:
    settings.EXAI_TOKEN_RECHECK_S = 0
    token = await asyncio.to_thread(issue)
    comm = communicator("/mcp", token=token, header=True, subprotocols=["mcp"])
    assert (await comm.connect())[0]
    await comm.send_json_to({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert "result" in await comm.receive_json_from()
    await asyncio.to_thread(revoke, "alice")
    await comm.send_json_to({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    reply = await comm.receive_json_from()
    assert reply["error"]["code"] == -32001 and "revoked" in reply["error"]["message"]
    assert (await comm.receive_output())["code"] == 4401


async def test_a_deactivated_users_open_socket_stops_being_served(user: Any, settings: Any) -> None:
    settings.EXAI_TOKEN_RECHECK_S = 0
    token = await asyncio.to_thread(issue)
    comm = await connected(token)
    user.is_active = False
    await user.asave(update_fields=["is_active"])
    reply = (await call(comm, "version", {}))[-1]
    assert reply["error"]["code"] == "unauthorized" and "inactive" in reply["error"]["message"]
