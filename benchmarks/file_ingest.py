"""File ingest: throughput against sha256sum, memory held during a 1 GiB upload, dedup hits.

Prints, nothing asserted:
  * ingest of a generated 1 GiB file (streamed to storage while SHA-256 and xxh3-128 are
    computed, then recorded in the database) next to `sha256sum` on the same file, in the
    same run, both with the file in the page cache; first target: ingest >= 80% of sha256sum;
  * peak RSS growth of the process during that ingest (first target < 64 MiB);
  * dedup hit latency: ingesting a 64 MiB file whose content is already stored (hashing it
    and taking a reference; the new copy is discarded), and the database part alone;
  * the user's path: a 256 MiB multipart POST /api/files/ to a real daphne, and the growth of
    the server's peak RSS meanwhile.

    python benchmarks/file_ingest.py [--size-mib 1024]     (a temporary SQLite, or DATABASE_URL)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import xxhash

from benchmarks.common import PYTHON, ROOT, free_port, percentiles, start, stop

MIB = 1024 * 1024


def generate(path: Path, size: int) -> None:
    """Incompressible-looking content without paying for 1 GiB of os.urandom."""
    block = os.urandom(16 * MIB)
    with path.open("wb") as handle:
        for index in range(size // len(block)):
            handle.write(index.to_bytes(8, "little") + block[8:])


def sha256sum_seconds(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)
    return time.perf_counter() - started


def hash_only_seconds(path: Path) -> float:
    """SHA-256 and xxh3-128 over the file in this process, nothing written: the ingest's floor."""
    sha, xxh = hashlib.sha256(), xxhash.xxh3_128()
    started = time.perf_counter()
    with path.open("rb") as handle:
        while chunk := handle.read(MIB):
            sha.update(chunk)
            xxh.update(chunk)
    return time.perf_counter() - started


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def through_daphne(path: Path, env: dict[str, str], size_mib: int) -> None:
    port = free_port()
    token = subprocess.run(
        [PYTHON, "manage.py", "issue_token", "bench-files", "--create"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    server_env = {**env, "EXAI_MAX_UPLOAD_MB": str(size_mib + 16), "EXAI_HANDLE_SIGTERM": "0"}
    server = start(
        [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "exai_site.asgi:application"], port, server_env
    )
    try:
        before = peak_rss(server.pid)
        with path.open("rb") as handle, httpx.Client(timeout=300) as client:
            started = time.perf_counter()
            response = client.post(
                f"http://127.0.0.1:{port}/api/files/",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": ("upload.bin", handle, "application/octet-stream")},
            )
            elapsed = time.perf_counter() - started
        response.raise_for_status()
        growth = peak_rss(server.pid) - before
    finally:
        stop(server)
    print(f"POST /api/files/ of {size_mib} MiB to daphne on loopback")
    print(f"  upload to 201                     {elapsed:7.2f} s   {size_mib / elapsed:7.0f} MiB/s")
    print(f"  server peak RSS growth            {growth / MIB:7.1f} MiB")


def child(path: str, work: str) -> None:
    """Run in a fresh process so its peak RSS speaks of the ingest alone."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from files_app.blobs import blob_from_stream
    from files_app.services import file_ingest

    user, _ = get_user_model().objects.get_or_create(username="bench-files")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    timings = []
    for _ in range(int(os.environ.get("BENCH_REPEAT", "1"))):
        started = time.perf_counter()
        with open(path, "rb") as handle:
            blob = blob_from_stream(handle)
        hashed = time.perf_counter()
        file_ingest(owner=user, blob=blob, name=Path(path).name)
        timings.append((hashed - started, time.perf_counter() - hashed))
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"timings": timings, "rss_growth": peak_after - peak_before, "work": work}))


def run_child(path: Path, env: dict[str, str], repeat: int = 1) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(path)],
        cwd=ROOT,
        env={**os.environ, **env, "BENCH_REPEAT": str(repeat)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, "ingest")
        return

    work = Path(tempfile.mkdtemp(prefix="exai-bench-files-"))
    env = {
        "DJANGO_SETTINGS_MODULE": "exai_site.settings",
        "EXAI_FILE_ROOT": str(work / "store"),
        "EXAI_LOG_LEVEL": "WARNING",
    }
    if not os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{work}/bench.sqlite3"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env={**os.environ, **env}, check=True)

    big = work / "big.bin"
    generate(big, args.size_mib * MIB)
    sha256sum_seconds(big)  # warm the page cache for both contenders
    sums = [sha256sum_seconds(big) for _ in range(2)]
    hashed_only = min(hash_only_seconds(big) for _ in range(2))
    ingest = run_child(big, env)
    hashed_s, recorded_s = ingest["timings"][0]
    sha_rate = args.size_mib / min(sums)
    ingest_rate = args.size_mib / (hashed_s + recorded_s)
    print(f"ingest of a {args.size_mib} MiB file (page cache warm)")
    print(f"  sha256sum                         {min(sums):7.2f} s   {sha_rate:7.0f} MiB/s")
    print(
        f"  EXAI ingest (hash+write, record)  {hashed_s + recorded_s:7.2f} s   {ingest_rate:7.0f} MiB/s"
        f"   = {ingest_rate / sha_rate:.0%} of sha256sum   (record step {recorded_s * 1000:.1f} ms)"
    )
    print(f"  hashes alone (sha256+xxh3, no write) {hashed_only:4.2f} s   {args.size_mib / hashed_only:7.0f} MiB/s")
    print(f"  peak RSS growth during ingest     {ingest['rss_growth'] / MIB:7.1f} MiB")
    big.unlink()

    medium = work / "medium.bin"
    generate(medium, 64 * MIB)
    run_child(medium, env)  # stored once
    hits = run_child(medium, env, repeat=7)["timings"]
    total = [(h + r) * 1000 for h, r in hits]
    database = [r * 1000 for _, r in hits]
    print("dedup hit, 64 MiB file already stored (7 runs), ms     p50       p95       p99")
    print("  whole ingest (hash + reference)             {:9.1f} {:9.1f} {:9.1f}".format(*percentiles(total)))
    print("  reference only (database)                   {:9.2f} {:9.2f} {:9.2f}".format(*percentiles(database)))
    medium.unlink()

    upload = work / "upload.bin"
    generate(upload, 256 * MIB)
    through_daphne(upload, env, 256)


if __name__ == "__main__":
    main()
