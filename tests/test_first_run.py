"""The first run as a new user meets it: `make run`'s command, `.env`, and the front page."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.django_db


def serve_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A fresh installation's environment: its own SQLite file, no provider keys, no `.env` unless given."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KIMI_", "GLM_", "LOCAL_", "EXAI_", "DATABASE_URL", "REDIS_URL"))
    }
    return {
        **env,
        "DJANGO_SECRET_KEY": "first-run-test-key",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        "EXAI_ENV_FILE": "",
        **extra,
    }


def test_a_busy_port_fails_at_once_before_anything_is_set_up(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "manage.py", "serve", "--port", str(port), "--token-file", str(tmp_path / "token")],
            cwd=ROOT,
            env=serve_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert f"127.0.0.1:{port} is already in use" in done.stderr and f"make run PORT={port + 1}" in done.stderr
    assert not (tmp_path / "fresh.sqlite3").exists()  # nothing migrated
    assert not (tmp_path / "token").exists()  # no token minted


@pytest.mark.e2e
def test_make_runs_command_reads_env_says_where_it_listens_and_serves_the_front_page(tmp_path: Path) -> None:
    env_file = tmp_path / "settings.env"
    env_file.write_text("KIMI_API_KEY=sk-from-dot-env\nEXAI_TOOL_PROFILE=lean\n")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), "--token-file", str(tmp_path / "token")],
        cwd=ROOT,
        env=serve_env(tmp_path, EXAI_ENV_FILE=str(env_file)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "serve exited: " + "".join(lines)
            lines.append(line)
            if "EXAI is listening" in line:
                break
        listening = lines[-1]
        base = f"http://127.0.0.1:{port}"
        for url in (f"{base}/", f"{base}/mcp", f"{base}/dashboard/", f"{base}/admin/", f"{base}/api/docs/"):
            assert url in listening
        output = "".join(lines)
        assert f"Files: tools read local paths under {Path.home().resolve()}" in output  # loopback only
        assert "Created admin 'admin'" in output and (tmp_path / "token").read_text().strip() in output
        page = httpx.get(f"{base}/", timeout=10)
        assert page.status_code == 200
        text = page.text
        assert 'Moonshot Kimi: <span class="ok">configured' in text  # the key came from the .env file
        assert f"claude mcp add --transport http exai {base}/mcp" in text
        assert f"ws://127.0.0.1:{port}/ws" in text and 'id="health" class="ok"' in text
        for link in ("/dashboard/", "/admin/", "/api/docs/"):
            assert f'href="{link}"' in text
        tools = httpx.get(
            f"{base}/api/tools/",
            headers={"Authorization": f"Bearer {(tmp_path / 'token').read_text().strip()}"},
            timeout=10,
        )
        assert tools.status_code == 200 and len(tools.json()["tools"]) < 20  # EXAI_TOOL_PROFILE=lean, from .env
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_front_page_names_this_servers_own_address_and_the_admin_links_to_it(client: Any, settings: Any) -> None:
    from django.contrib import admin

    settings.ALLOWED_HOSTS = ["exai.example.test"]
    page = client.get("/", HTTP_HOST="exai.example.test:9000")
    assert page.status_code == 200
    text = page.content.decode()
    assert "claude mcp add --transport http exai http://exai.example.test:9000/mcp" in text
    assert "ws://exai.example.test:9000/ws" in text and "&lt;token&gt;" in text
    assert admin.site.site_url == "/"  # the admin's "View site"
