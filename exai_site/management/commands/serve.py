"""`make run`: check the port, migrate, set up a local admin and token, and serve with daphne.

The port is tried first, so a busy one fails at once, before anything is changed. When
daphne listens, one line says so, with the URLs to open.
"""

import errno
import functools
import os
import socket
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser


def port_free(host: str, port: int) -> str | None:
    """None when `host:port` can be listened on; else why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"{host}:{port} is already in use (another server?)"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    return f"http://[{shown}]:{port}" if ":" in shown and not shown.startswith("[") else f"http://{shown}:{port}"


LOOPBACK = ("127.0.0.1", "::1", "localhost")


class Command(BaseCommand):
    help = "Set up a local server (migrate, an admin, a token) and serve it with daphne: what `make run` does."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8079, help="Port to listen on (default 8079).")
        parser.add_argument("--token-file", default=None, help="Where setup_local keeps the token (var/local_token).")

    def _local_files(self, host: str) -> None:
        """A server only this machine can reach reads its user's own files by path (under the home
        folder) unless EXAI_ALLOWED_FILE_ROOTS says otherwise; a server others can reach reads none."""
        from django.conf import settings

        if "EXAI_ALLOWED_FILE_ROOTS" in os.environ:
            roots = settings.EXAI_ALLOWED_FILE_ROOTS
        elif host in LOOPBACK:
            roots = settings.EXAI_ALLOWED_FILE_ROOTS = [Path.home().resolve()]
        else:
            roots = []
        if roots:
            self.stdout.write(
                f"Files: tools read local paths under {', '.join(map(str, roots))} "
                "(EXAI_ALLOWED_FILE_ROOTS; set it empty for none)."
            )
        else:
            self.stdout.write("Files: tools read no local paths (upload files, or use the stdio bridge).")

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        if (problem := port_free(host, port)) is not None:
            raise CommandError(f"{problem}; choose another port: make run PORT={port + 1} (or --port)")
        call_command("migrate", verbosity=0)
        self._local_files(host)
        extra = {"token_file": Path(options["token_file"])} if options["token_file"] else {}
        call_command("setup_local", host=host, port=port, stdout=self.stdout, **extra)
        url = base_url(host, port)
        listening = (
            f"EXAI is listening on {url}/ — MCP {url}/mcp · dashboard {url}/dashboard/ · "
            f"admin {url}/admin/ · API docs {url}/api/docs/ (Ctrl-C stops it)"
        )

        def ready() -> None:
            self.stdout.write(self.style.SUCCESS(listening))
            self.stdout.flush()

        from daphne.cli import CommandLineInterface
        from daphne.server import Server

        cli = CommandLineInterface()
        cli.server_class = functools.partial(Server, ready_callable=ready)
        # Warnings only: the line above says where it listens; the access log stays off.
        cli.run(["-b", host, "-p", str(port), "-v", "0", "exai_site.asgi:application"])
