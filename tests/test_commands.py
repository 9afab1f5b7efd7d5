"""Management commands: issue_token, setup_local, and the stdio bridge's failure modes."""

import asyncio
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from rest_framework_simplejwt.tokens import AccessToken

from tests.conftest import free_port
from tests.helpers import MCP_INITIALIZE
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


def printed_token(output: str) -> str:
    return next(line for line in output.splitlines() if line.count(".") == 2 and " " not in line)


def test_setup_local_creates_an_admin_once_and_prints_a_token(django_user_model: Any, tmp_path: Path) -> None:
    out = StringIO()
    call_command("setup_local", "--token-file", str(tmp_path / "token"), stdout=out)
    assert "Created admin 'admin'" in out.getvalue()
    assert django_user_model.objects.filter(is_superuser=True).count() == 1
    again = StringIO()
    call_command("setup_local", "--token-file", str(tmp_path / "token"), "--port", "8090", stdout=again)
    assert "Created admin" not in again.getvalue()
    assert "claude mcp add --transport http exai http://127.0.0.1:8090/mcp" in again.getvalue()


def test_setup_local_shows_the_token_it_issued_before_until_it_is_revoked(
    django_user_model: Any, tmp_path: Path
) -> None:
    from exai_site.models import IssuedToken

    path = tmp_path / "token"
    first = StringIO()
    call_command("setup_local", "--token-file", str(path), stdout=first)
    token = printed_token(first.getvalue())
    assert path.read_text().strip() == token and path.stat().st_mode & 0o777 == 0o600
    again = StringIO()
    call_command("setup_local", "--token-file", str(path), stdout=again)
    assert printed_token(again.getvalue()) == token and "the one issued before" in again.getvalue()
    assert IssuedToken.objects.count() == 1  # no new token minted on a restart
    call_command("revoke_token", "admin", stdout=StringIO())
    after = StringIO()
    call_command("setup_local", "--token-file", str(path), stdout=after)
    assert printed_token(after.getvalue()) != token and "New access token" in after.getvalue()
    assert IssuedToken.objects.filter(revoked_at__isnull=True).count() == 1


def test_setup_local_replaces_a_kept_token_that_is_about_to_expire(django_user_model: Any, tmp_path: Path) -> None:
    path = tmp_path / "token"
    call_command("setup_local", "--token-file", str(path), "--days", "0.5", stdout=StringIO())
    short = path.read_text().strip()
    out = StringIO()
    call_command("setup_local", "--token-file", str(path), stdout=out)
    assert printed_token(out.getvalue()) != short  # under a day left: a new one


async def test_the_stdio_bridge_answers_the_handshake_and_reports_an_unreachable_server() -> None:
    reader = asyncio.StreamReader()
    lines = [
        MCP_INITIALIZE,
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
