"""Shared pieces of the benchmarks: percentiles, subprocess servers, a prepared database."""

from __future__ import annotations

import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def percentiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return (float("nan"),) * 3  # type: ignore[return-value]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


def start(command: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    wait_for_port(port, process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def prepared_database() -> tuple[dict[str, str], str]:
    """Migrate a fresh SQLite database (or DATABASE_URL's) and return its env and a bench user's token."""
    # One key for the token made here and the servers that check it (a DEBUG-off server needs one).
    env = {
        "DJANGO_SETTINGS_MODULE": "exai_site.settings",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
    }
    if not os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='exai-bench-')}/bench.sqlite3"
    full = {**os.environ, **env}
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=full, check=True)
    token = subprocess.run(
        [PYTHON, "manage.py", "issue_token", "bench", "--create"],
        cwd=ROOT,
        env=full,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return env, token


def cluster_database(url: str) -> str:
    """`url`'s database, created if it is missing (a fresh one per run would cost a migrate each time)."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')
    return url


def bench_server(
    mode: str, *, database_url: str, redis_url: str, stub_port: int, slots: int
) -> tuple[dict[str, str], str]:
    """A server's environment for a benchmark run, and a bench user's token: embedded mode
    (a fresh SQLite, in-memory layer) or cluster mode (`database_url` + Redis under a prefix of
    its own); the stub as Kimi; every client a slot, and rate limits that count every call
    and frame, as deployed, but never refuse one; DEBUG off, plain http on loopback."""
    if mode == "cluster":
        os.environ["DATABASE_URL"] = cluster_database(database_url)
    else:
        os.environ.pop("DATABASE_URL", None)
    db_env, token = prepared_database()
    env = {
        **db_env,
        "KIMI_API_KEY": "bench",
        "KIMI_BASE_URL": f"http://127.0.0.1:{stub_port}/v1",
        "EXAI_MAX_CONCURRENCY": str(slots),
        "EXAI_KIMI_MAX_CONCURRENCY": str(slots),
        "EXAI_USER_MAX_CONCURRENCY": str(slots),
        "EXAI_USER_PROVIDER_SHARE": "1",
        "EXAI_USER_CALLS_PER_MIN": str(10**9),
        "EXAI_WS_FRAMES_PER_S": str(10**9),
        "EXAI_API_USER_RATE": "1000000/minute",
        "EXAI_LOG_LEVEL": "WARNING",
        # Measured as deployed: DEBUG keeps every SQL query in memory.
        "DJANGO_DEBUG": "0",
        "EXAI_HTTPS": "0",  # plain http on loopback (DEBUG off would redirect to https)
    }
    if mode == "cluster":
        env["REDIS_URL"] = redis_url
        env["EXAI_REDIS_PREFIX"] = f"exai-bench-{uuid.uuid4().hex[:8]}"
    return env, token
