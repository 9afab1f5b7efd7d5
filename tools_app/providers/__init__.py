"""The provider registry: adding a provider is one module and one line in `_PROVIDER_CLASSES`."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from tools_app.providers.base import ChatResult, ModelSpec, Provider, ProviderError
from tools_app.providers.glm import GlmProvider
from tools_app.providers.kimi import KimiProvider
from tools_app.providers.local import LocalProvider

__all__ = ["ChatResult", "ModelSpec", "Provider", "ProviderError", "ResolvedModel", "all_providers"]

_PROVIDER_CLASSES: list[type[Provider]] = [KimiProvider, GlmProvider, LocalProvider]
# `auto` and the provider aliases pick these first when their provider is configured.
_PREFERRED = {"kimi": "kimi-k2-0905-preview", "glm": "glm-4.6"}
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
    pass


@dataclass(frozen=True)
class ResolvedModel:
    provider: Provider
    spec: ModelSpec


def available_models() -> list[ModelSpec]:
    return [spec for provider in configured_providers() for spec in provider.models()]


def model_aliases() -> dict[str, str]:
    """Alias -> what it means, for `listmodels` and the tool schemas."""
    return {
        "auto": "the first configured provider's preferred model (Kimi, then GLM, then local)",
        "kimi": _PREFERRED["kimi"],
        "glm": _PREFERRED["glm"],
    }


def resolve_model(name: str | None) -> ResolvedModel:
    """Turn a model name or alias into a provider and model; raise ProviderError or UnknownModel."""
    requested = (name or settings.EXAI_DEFAULT_MODEL or "auto").strip()
    if requested == "auto":
        for provider in configured_providers():
            return _resolve_in(provider, _PREFERRED.get(provider.name, provider.default_model))
        raise ProviderError(
            "no provider is configured on this server: set KIMI_API_KEY, GLM_API_KEY or LOCAL_BASE_URL.",
            code="provider_unavailable",
        )
    if requested in _PREFERRED:
        provider = get_provider(requested)
        if not provider.configured:
            raise provider.unavailable()
        return _resolve_in(provider, _PREFERRED[requested])
    for provider in all_providers():
        for spec in provider.models():
            if spec.name == requested:
                if not provider.configured:
                    raise provider.unavailable()
                return ResolvedModel(provider, spec)
    raise UnknownModel(requested)


def _resolve_in(provider: Provider, model_name: str) -> ResolvedModel:
    for spec in provider.models():
        if spec.name == model_name:
            return ResolvedModel(provider, spec)
    return ResolvedModel(provider, provider.models()[0])
