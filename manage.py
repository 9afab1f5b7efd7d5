#!/usr/bin/env python
"""Django's command-line utility for administrative tasks (and `make run`, through `serve`).

Reads `.env` beside this file, or the file `EXAI_ENV_FILE` names (empty: none), first:
variables already set in the environment win over it.
"""

import os
import sys
from pathlib import Path


def read_env_file() -> None:
    from dotenv import load_dotenv

    path = os.environ.get("EXAI_ENV_FILE", str(Path(__file__).resolve().parent / ".env"))
    if path and Path(path).is_file():
        load_dotenv(path, override=False)


def main() -> None:
    read_env_file()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exai_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
