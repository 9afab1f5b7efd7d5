"""Management commands: issue_token, setup_local, and the stdio bridge's failure modes."""

import asyncio
import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from rest_framework_simplejwt.tokens import AccessToken

from tests.conftest import free_port
from tools_app.management.commands.mcp_stdio import serve_stdio

pytestmark = pytest.mark.django_db


def test_issue_token_prints_a_valid_token_for_the_user_with_the_asked_lifetime(user: Any) -> None:
    out = StringIO()
    call_command("issue_token", "alice", "--days", "90", stdout=out)
    token = AccessToken(out.getvalue().strip())
    assert token["user_id"] == str(user.pk)
    assert 89 * 86400 < token["exp"] - token["iat"] <= 90 * 86400


def test_issue_token_refuses_an_unknown_user_unless_asked_to_create_it(django_user_model: Any) -> None:
    with pytest.raises(CommandError, match="no user 'carol'"):
        call_command("issue_token", "carol", stdout=StringIO())
    call_command("issue_token", "carol", "--create", stdout=StringIO())
    assert not django_user_model.objects.get(username="carol").has_usable_password()


def test_setup_local_creates_an_admin_once_and_prints_a_token(django_user_model: Any) -> None:
    out = StringIO()
    call_command("setup_local", stdout=out)
    assert "Created admin 'admin'" in out.getvalue()
    assert django_user_model.objects.filter(is_superuser=True).count() == 1
    again = StringIO()
    call_command("setup_local", stdout=again)
    assert "Created admin" not in again.getvalue()
    assert "claude mcp add --transport http exai http://127.0.0.1:8079/mcp" in again.getvalue()


async def test_the_stdio_bridge_answers_the_handshake_and_reports_an_unreachable_server() -> None:
    reader = asyncio.StreamReader()
    lines = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "chat", "arguments": {"prompt": "x"}}},
    ]
    reader.feed_data(b"".join(json.dumps(line).encode() + b"\n" for line in lines) + b"not json\n")
    reader.feed_eof()
    written: list[bytes] = []
    await serve_stdio(f"ws://127.0.0.1:{free_port()}/ws", "token", reader, written.append)

    replies = {reply.get("id"): reply for reply in map(json.loads, written)}
    assert replies[1]["result"]["protocolVersion"] == "2025-06-18"
    assert replies[2]["error"]["code"] == -32603 and "cannot reach EXAI server" in replies[2]["error"]["message"]
    assert replies[3]["result"]["isError"] is True
    assert replies[None]["error"]["code"] == -32700
