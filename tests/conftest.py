"""Shared fixtures: the provider stub, users with tokens, and a real daphne server process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from errors_app.capture import take_pending
from metrics_app.recorder import buffer as sample_buffer
from tests.provider_stub import ProviderStub
from tools_app.ratelimit import reset_local as reset_local_rates
from tools_app.turns import flush_turns

ROOT = Path(__file__).resolve().parent.parent


def _flush_again_after_a_deadlock() -> None:
    """Between tests the database is emptied with one TRUNCATE of every table, which locks them
    one by one while server processes and this process's writer threads may still be writing
    (a turn, an error, a sample of the test that just ended): PostgreSQL then ends one of the
    two as a deadlock, sometimes the TRUNCATE. The writer's transaction is gone by then, so
    the flush is simply tried again (a harness matter: nothing truncates in production)."""
    from django.core.management.base import CommandError
    from django.test import testcases

    teardown = testcases.TransactionTestCase._fixture_teardown

    def retried(self: Any) -> None:
        for attempt in range(5):
            try:
                return teardown(self)
            except CommandError as exc:
                if attempt == 4 or "deadlock detected" not in repr(exc.__cause__ or exc.__context__):
                    raise
                time.sleep(0.2)

    testcases.TransactionTestCase._fixture_teardown = retried  # type: ignore[method-assign]


_flush_again_after_a_deadlock()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None, tmp_path_factory: Any) -> None:
    # A server subprocess must see the test database, so SQLite's test DB is a file, not memory.
    from django.conf import settings
    from django.db import connections

    database = connections["default"].settings_dict
    if database["ENGINE"].endswith("sqlite3"):
        database["TEST"]["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")
    # Worker threads of the test process would otherwise keep connections open past teardown.
    database["CONN_MAX_AGE"] = settings.DATABASES["default"]["CONN_MAX_AGE"] = 0


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    yield
    # Worker threads of this process (async ORM, database_sync_to_async) keep connections the
    # main thread cannot close; on PostgreSQL end them, so the test database can be dropped.
    from django.db import connection

    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing() -> Iterator[None]:
    """Users made by the tests get MD5 password hashes: PBKDF2 costs about half a second of CPU
    per user here, a few minutes over the suite. Server subprocesses keep the real hashers, so a
    user who logs in to one (the dashboard's browser test) is given a PBKDF2 hash explicitly."""
    from django.test import override_settings

    fast = override_settings(
        PASSWORD_HASHERS=[
            "django.contrib.auth.hashers.MD5PasswordHasher",
            "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        ]
    )
    fast.enable()
    yield
    fast.disable()


@pytest.fixture(scope="session", autouse=True)
def drop_samples_at_exit() -> Iterator[None]:
    yield
    # The last test's latency samples would otherwise be flushed at exit, into a test database
    # that no longer exists.
    sample_buffer.take()


@pytest.fixture(scope="session")
def provider_stub() -> Iterator[ProviderStub]:
    stub = ProviderStub().start()
    yield stub
    stub.stop()


# Redis keys of this test session, apart from any other run or deployment sharing the Redis.
REDIS_PREFIX = f"exai-test-{uuid.uuid4().hex[:8]}"


def provider_env(stub: ProviderStub) -> dict[str, str]:
    return {
        "EXAI_REDIS_PREFIX": REDIS_PREFIX,
        "KIMI_API_KEY": "test-kimi-key",
        "KIMI_BASE_URL": f"{stub.url}/v1",
        "GLM_API_KEY": "test-glm-key",
        "GLM_BASE_URL": f"{stub.url}/api/paas/v4/",
        "EXAI_PROVIDER_MAX_RETRIES": "0",
        # Every tool on (tests/test_tool_profiles.py covers the profiles themselves).
        "EXAI_TOOL_PROFILE": "full",
    }


@pytest.fixture(scope="session")
def file_root(tmp_path_factory: Any) -> Path:
    """Where this test session's uploaded blobs live, for the test process and server processes alike."""
    return Path(tmp_path_factory.mktemp("files"))


@pytest.fixture(autouse=True)
async def turns_stored() -> Any:
    """Turns are written just after a call answers (tools_app/turns.py): each test's are
    stored before its database is emptied for the next."""
    yield
    await flush_turns()


@pytest.fixture(autouse=True)
def stub(provider_stub: ProviderStub, settings: Any, file_root: Path) -> ProviderStub:
    """Every test talks to a freshly reset stub, with Kimi and GLM configured against it."""
    provider_stub.reset()
    settings.MEDIA_ROOT = str(file_root)
    for name, value in provider_env(provider_stub).items():
        setattr(settings, name, int(value) if name == "EXAI_PROVIDER_MAX_RETRIES" else value)
    settings.EXAI_ENABLED_TOOLS, settings.EXAI_DISABLED_TOOLS = [], []
    settings.EXAI_REDIS_PREFIX = f"{REDIS_PREFIX}-{uuid.uuid4().hex[:6]}"
    settings.EXAI_HANDLE_SIGTERM = False  # pytest owns this process's signals
    take_pending()  # errors captured by an earlier test are that test's business
    sample_buffer.take()  # and so are its latency samples
    reset_local_rates()  # and the calls it made, counted against its user id
    # The writer thread leaves samples to the tests, which flush them while they may use the database.
    settings.EXAI_METRICS_FLUSH_S = 3600
    return provider_stub


REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def redis_settings(settings: Any) -> Any:
    """Settings pointing at the local Redis; the test is skipped where there is none."""
    if not redis_available():
        pytest.skip("no Redis at 127.0.0.1:6379")
    settings.REDIS_URL = REDIS_URL
    return settings


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="alice", password="alice-password-123")


@pytest.fixture
def other_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="bob", password="bob-password-123")


def access_token(user: Any) -> str:
    from rest_framework_simplejwt.tokens import AccessToken

    return str(AccessToken.for_user(user))


@pytest.fixture
def token(user: Any) -> str:
    return access_token(user)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    from django.db import connection

    params = connection.settings_dict
    if params["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{params['NAME']}"
    auth = params["USER"] + (f":{params['PASSWORD']}" if params.get("PASSWORD") else "")
    return f"postgres://{auth}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{params['NAME']}"


class ServerProcess:
    """A real server (daphne by default) in a subprocess, on a free loopback port."""

    def __init__(
        self, env: dict[str, str], command: list[str] | None = None, port: int | None = None, log: Path | None = None
    ) -> None:
        self.port = port or free_port()
        self.log = log  # where its stdout (daphne's access log) goes; nowhere by default
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "exai_site.settings", **env}
        self.command = command or [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "exai_site.asgi:application",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, *, listens: bool = True) -> ServerProcess:
        stdout = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=stdout)
        if not listens:  # a worker: nothing to wait for
            return self
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start listening within 30s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def server_env(django_db_blocker: Any, provider_stub: ProviderStub, file_root: Path, **extra: str) -> dict[str, str]:
    """What a server process of the tests runs with: the test database, its files, the stub."""
    with django_db_blocker.unblock():
        url = database_url()
    # Its latency samples land in the shared test database at once, inside the test that caused
    # them, not in whichever test runs next.
    return {
        "DATABASE_URL": url,
        "EXAI_FILE_ROOT": str(file_root),
        "EXAI_METRICS_FLUSH_S": "0.02",
        **provider_env(provider_stub),
        **extra,
    }


@pytest.fixture(scope="session")
def server(
    django_db_setup: None, django_db_blocker: Any, provider_stub: ProviderStub, file_root: Path
) -> Iterator[ServerProcess]:
    process = ServerProcess(server_env(django_db_blocker, provider_stub, file_root)).start()
    yield process
    process.stop()
