"""Tiny typed readers for environment variables that fail loudly on a bad value."""

import os
import secrets
import time
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None:
        # Secrets may come from a file (Docker/Kubernetes secrets): NAME_FILE=/run/secrets/x.
        path = os.environ.get(f"{name}_FILE")
        if path:
            try:
                with open(path, encoding="utf-8") as handle:
                    return handle.read().strip()
            except OSError as exc:
                raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    return value


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value.strip()


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use 1/0, true/false, yes/no or on/off.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None or not value.strip():
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum of {minimum}.")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    value = _raw(name)
    if value is None or not value.strip():
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum of {minimum}.")
    return number


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


_RATE_PERIODS = {"s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day"}


def env_rate(name: str, default: str) -> str | None:
    """A request rate as DRF writes it, `N/second|minute|hour|day`; `0` or `off` for no limit (None)."""
    value = (_raw(name) or default).strip().lower()
    if value in ("0", "off", "none"):
        return None
    count, _, period = value.partition("/")
    if not count.isdigit() or int(count) < 1 or period not in _RATE_PERIODS:
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate; write it as e.g. 600/minute, or 0 for none.")
    return value


def installation_secret_key(path: Path) -> str:
    """This installation's own secret key: read from `path`, or made there (mode 0600) on first use.

    Several processes may start at once: the first to create the file writes the key, the
    others read what it wrote.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # a process that created it a moment ago may still be writing
            key = path.read_text(encoding="utf-8").strip()
            if key:
                return key
            time.sleep(0.02)
        raise ImproperlyConfigured(f"{path} is empty; delete it to make a new key, or set DJANGO_SECRET_KEY.") from None
    key = secrets.token_urlsafe(50)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key
