"""The provider registry: adding a provider is one module and one line in `_PROVIDER_CLASSES`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from tools_app.providers.base import Provider, ProviderError
from tools_app.providers.glm import GlmProvider
from tools_app.providers.kimi import KimiProvider
from tools_app.providers.local import LocalProvider
from tools_app.providers.replies import ChatResult
from tools_app.providers.types import ModelSpec

__all__ = [
    "ChatResult",
    "ModelSpec",
    "Provider",
    "ProviderError",
    "ResolvedModel",
    "UnknownModel",
    "all_providers",
    "resolve_model",
]

_PROVIDER_CLASSES: list[type[Provider]] = [KimiProvider, GlmProvider, LocalProvider]
_instances: list[Provider] | None = None


def all_providers() -> list[Provider]:
    global _instances
    if _instances is None:
        _instances = [cls() for cls in _PROVIDER_CLASSES]
    return _instances


def configured_providers() -> list[Provider]:
    return [provider for provider in all_providers() if provider.configured]


def get_provider(name: str) -> Provider:
    for provider in all_providers():
        if provider.name == name:
            return provider
    raise KeyError(name)


def configured_provider(name: str) -> Provider:
    """The provider by that name if it is configured here, else `provider_unavailable` saying how to enable it."""
    provider = get_provider(name)
    if not provider.configured:
        raise provider.unavailable()
    return provider


@receiver(setting_changed)
def _reset_on_settings_change(**kwargs: object) -> None:
    # Providers cache SDK clients built from settings; tests that override settings get fresh ones.
    global _instances
    _instances = None


class UnknownModel(LookupError):
    """A model no configured provider serves; `advice` says what was retired and what is listed."""

    def __init__(self, name: str, advice: str) -> None:
        super().__init__(name)
        self.name = name
        self.advice = advice


@dataclass(frozen=True)
class ResolvedModel:
    provider: Provider
    spec: ModelSpec


def available_models() -> list[ModelSpec]:
    """The configured providers' models as last read (no I/O)."""
    return [spec for provider in configured_providers() for spec in provider.models()]


async def catalogue_models(provider: Provider) -> list[ModelSpec]:
    """A configured provider's models now, reading its list when due; [] when it is not configured."""
    return await provider.catalogue.current() if provider.configured else []


def model_aliases() -> dict[str, str]:
    """Alias -> what it means now, for `listmodels` and the tool schemas."""
    aliases = {
        "auto": "the best model of the first configured provider (Kimi, then GLM, then local) that can do the job"
    }
    for provider in all_providers():
        if provider.name in ("kimi", "glm"):
            best = provider.catalogue.preferred() if provider.configured else None
            aliases[provider.name] = best.name if best else f"{provider.label}'s best listed model (not configured)"
    return aliases


async def resolve_model(name: str | None, *, vision: bool = False, files: bool = False) -> ResolvedModel:
    """Turn a model name or alias into a provider and a model it lists now.

    `auto` (and no name at all) picks by capability: with `vision` a model that reads
    images, with `files` a provider that has a files API. Raise ProviderError when the
    provider is not configured, UnknownModel when nobody serves the name.
    """
    requested = (name or settings.EXAI_DEFAULT_MODEL or "auto").strip()
    if requested == "auto":
        return await _auto(vision=vision, files=files)
    if requested in _PROVIDER_NAMES:
        provider = configured_provider(requested)
        spec = await provider.catalogue.best(vision=vision) or await provider.catalogue.best()
        if spec is None:
            raise UnknownModel(
                requested, f"{provider.label} lists no models now ({provider.catalogue.error or 'empty list'})."
            )
        return ResolvedModel(provider, spec)
    owner = next((p for p in all_providers() if re.fullmatch(p.owns, requested)), None)
    if owner is not None and not owner.configured:
        raise owner.unavailable()
    # The provider whose ids look like this one first; only its list (or, for an id nobody's
    # ids look like, every list) is read again when the cached one lacks the id.
    for provider in sorted(configured_providers(), key=lambda p: p is not owner):
        if spec := await provider.catalogue.find(requested, reread=owner in (None, provider)):
            return ResolvedModel(provider, spec)
    if owner is not None:
        raise UnknownModel(requested, owner.catalogue.describe(requested))
    listed = ", ".join(spec.name for spec in available_models()) or "none configured"
    raise UnknownModel(requested, f"listed now: {listed}.")


async def _auto(*, vision: bool, files: bool) -> ResolvedModel:
    providers = configured_providers()
    if not providers:
        raise ProviderError(
            "no provider is configured on this server: set KIMI_API_KEY, GLM_API_KEY or LOCAL_BASE_URL.",
            code="provider_unavailable",
        )
    candidates = [provider for provider in providers if provider.max_file_bytes or not files] or providers
    for provider in candidates:
        if spec := await provider.catalogue.best(vision=vision):
            return ResolvedModel(provider, spec)
    need = "reads images" if vision else "is listed"
    raise UnknownModel("auto", f"no configured provider lists a model that {need} now.")


_PROVIDER_NAMES = {cls.name for cls in _PROVIDER_CLASSES}
