"""Settings helpers fail loudly; configuration mistakes surface as system checks with ids and hints."""

from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured

from exai_site.env import env_bool, env_float, env_int, env_list, env_str


def check_ids(**kwargs: Any) -> set[str]:
    return {message.id for message in run_checks(**kwargs) if message.id and message.id.startswith("exai.")}


def test_the_default_configuration_passes_every_check() -> None:
    assert check_ids() == set()


@pytest.mark.parametrize(
    ("reader", "value", "fragment"),
    [
        (lambda: env_int("X_TEST", 1), "many", "not a whole number"),
        (lambda: env_int("X_TEST", 1, minimum=1), "0", "below the minimum"),
        (lambda: env_float("X_TEST", 1.0), "fast", "not a number"),
        (lambda: env_bool("X_TEST", True), "maybe", "not a boolean"),
    ],
)
def test_a_bad_value_raises_improperly_configured_naming_the_variable(
    monkeypatch: Any, reader: Any, value: str, fragment: str
) -> None:
    monkeypatch.setenv("X_TEST", value)
    with pytest.raises(ImproperlyConfigured, match=f"X_TEST.*{fragment}"):
        reader()


def test_values_parse_and_defaults_apply(monkeypatch: Any) -> None:
    monkeypatch.setenv("X_INT", "7")
    monkeypatch.setenv("X_BOOL", "off")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert (env_int("X_INT", 1), env_bool("X_BOOL", True), env_list("X_LIST")) == (7, False, ["a", "b", "c"])
    assert (env_int("X_MISSING", 5), env_str("X_MISSING", "d")) == (5, "d")


def test_a_secret_can_come_from_a_file(monkeypatch: Any, tmp_path: Any) -> None:
    secret = tmp_path / "key"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert env_str("X_SECRET") == "s3cret"


@pytest.mark.parametrize(
    ("overrides", "check_id"),
    [
        ({"KIMI_BASE_URL": "moonshot.ai/v1"}, "exai.E001"),
        ({"LOCAL_BASE_URL": "http://127.0.0.1:11434/v1", "LOCAL_MODELS": []}, "exai.E002"),
        ({"EXAI_KIMI_MAX_CONCURRENCY": 50}, "exai.W002"),
        ({"EXAI_TOOL_TIMEOUT_S": 30.0}, "exai.E004"),
        ({"EXAI_HEARTBEAT_S": 10.0}, "exai.E005"),
        ({"EXAI_DISABLED_TOOLS": ["chta"]}, "exai.W003"),
    ],
)
def test_a_configuration_mistake_is_a_system_check_with_a_hint(
    settings: Any, overrides: dict[str, Any], check_id: str
) -> None:
    for name, value in overrides.items():
        setattr(settings, name, value)
    messages = [m for m in run_checks() if m.id == check_id]
    assert messages and messages[0].hint


def test_every_variable_the_settings_read_is_documented_in_env_example_and_the_readme() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    read = set(re.findall(r'env_\w+\(\s*"([A-Z0-9_]+)"', (root / "exai_site" / "settings.py").read_text()))
    example = set(re.findall(r"^([A-Z0-9_]+)=", (root / ".env.example").read_text(), re.M))
    readme = (root / "README.md").read_text()
    assert read, "no variables found: the pattern no longer matches settings.py"
    assert sorted(read - example) == []
    assert sorted(name for name in read if f"`{name}`" not in readme) == []
