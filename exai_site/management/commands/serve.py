"""`make run`: check the port, migrate, set up a local admin and token, and serve with daphne.

The port is tried first, so a busy one fails at once, before anything is changed. When
daphne listens, one line says so, with the URLs to open.
"""

import errno
import functools
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


class Command(BaseCommand):
    help = "Set up a local server (migrate, an admin, a token) and serve it with daphne: what `make run` does."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8079, help="Port to listen on (default 8079).")
        parser.add_argument("--token-file", default=None, help="Where setup_local keeps the token (var/local_token).")

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        if (problem := port_free(host, port)) is not None:
            raise CommandError(f"{problem}; choose another port: make run PORT={port + 1} (or --port)")
        call_command("migrate", verbosity=0)
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
