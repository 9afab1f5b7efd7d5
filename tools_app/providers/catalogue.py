"""The model catalogue: what each provider lists now, merged with what we know per model family.

Providers rotate their models (Moonshot retired every `kimi-k2-*-preview` id in 2026), so
no model id is baked into a default. Each provider's `GET /models` is read on first use,
again every EXAI_MODEL_REFRESH_S, and once more (at most every MISS_REFRESH_S) when a call
names a model the cached list lacks. Each listed id takes the facts of the first family
whose pattern it matches (context window, output limit, thinking, vision, sampling it
refuses); an id no family knows is served with conservative defaults. When the list cannot
be read at all, the provider's known lineup stands in (marked `listed: false`) and the read
is retried within a minute. The cache is per process: a cluster reads the list once per
process per interval, which no provider notices.

Aliases (`kimi`, `glm`, `auto`) take the best listed model by a preference order per
provider, unless EXAI_<PROVIDER>_DEFAULT_MODEL names one the provider lists.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from django.conf import settings

from tools_app.providers.types import ModelSpec

logger = logging.getLogger(__name__)


class Provider(Protocol):
    """What a catalogue reads of its provider (tools_app/providers/base.py implements it)."""

    @property
    def name(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def families(self) -> Sequence[Family]: ...

    @property
    def known_models(self) -> Sequence[str]: ...

    @property
    def preference(self) -> Sequence[str]: ...

    @property
    def retired(self) -> dict[str, str]: ...

    @property
    def default_model_setting(self) -> str: ...

    async def list_model_ids(self) -> list[str]: ...


# A call naming an unlisted model refreshes the list at most this often (typos must not hammer /models).
MISS_REFRESH_S = 30.0
# After a failed read, try again this soon rather than after the full refresh interval.
FAILED_REFRESH_S = 60.0

# Served for a listed id that no family describes: small enough to be safe anywhere.
UNKNOWN_CONTEXT_WINDOW = 32_768
UNKNOWN_MAX_OUTPUT = 4_096


@dataclass(frozen=True)
class Family:
    """What we know of a family of model ids (a full-match regex), merged into each listed id."""

    pattern: str
    facts: ModelSpec  # a template: each listed id of the family gets these, with its own name

    def matches(self, model: str) -> bool:
        return re.fullmatch(self.pattern, model) is not None

    def spec(self, model: str, provider: str, *, listed: bool) -> ModelSpec:
        return replace(self.facts, name=model, provider=provider, listed=listed)


def family(
    pattern: str,
    context_window: int,
    max_output_tokens: int,
    description: str,
    *,
    vision: bool = False,
    web_search: bool = False,
    thinking: bool = False,
    function_calling: bool = True,
    fixed_temperature: float | None = None,
) -> Family:
    """A family's facts; `fixed_temperature` is the only one the model takes (Moonshot pins its thinking models)."""
    facts = ModelSpec(
        name="",
        provider="",
        context_window=context_window,
        max_output_tokens=max_output_tokens,
        vision=vision,
        web_search=web_search,
        thinking=thinking,
        function_calling=function_calling,
        fixed_temperature=fixed_temperature,
        description=description,
    )
    return Family(pattern, facts)


def model_spec(provider: Provider, model: str, *, listed: bool = True) -> ModelSpec:
    """The facts of one model id: its family's, or conservative defaults for an id no family knows."""
    for family in provider.families:
        if family.matches(model):
            return family.spec(model, provider.name, listed=listed)
    return ModelSpec(
        name=model,
        provider=provider.name,
        context_window=UNKNOWN_CONTEXT_WINDOW,
        max_output_tokens=UNKNOWN_MAX_OUTPUT,
        description="listed by the provider; unknown family, conservative limits",
        known=False,
        listed=listed,
    )


class ModelCatalogue:
    """One provider's models now: its live list (cached, refreshed) merged with the family facts."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self._specs: list[ModelSpec] | None = None  # None until the list has been read
        self._fresh_until = 0.0  # monotonic; 0 = never read
        self._last_miss_refresh = -MISS_REFRESH_S
        self._refreshing: asyncio.Task[None] | None = None
        self._preferred: dict[bool, ModelSpec | None] = {}  # by `vision`, until the list changes
        self.error = ""  # why the last read failed, for listmodels and health

    def models(self) -> list[ModelSpec]:
        """What is known now, without waiting: the last list read, else the known lineup."""
        return self._specs if self._specs is not None else self._fallback()

    def _fallback(self) -> list[ModelSpec]:
        return [model_spec(self.provider, model, listed=False) for model in self.provider.known_models]

    def stale(self) -> None:
        """Read the list again before the next lookup (the provider refused a model it listed)."""
        self._fresh_until = 0.0

    async def current(self) -> list[ModelSpec]:
        """The models, reading the list first when it is due."""
        if time.monotonic() >= self._fresh_until:
            await self.refresh()
        return self.models()

    async def refresh(self) -> None:
        """Read the live list once, however many callers ask at the same time."""
        task = self._refreshing
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self._refreshing = asyncio.ensure_future(self._read())
        # Shielded: one caller giving up must not cancel the read the others wait for.
        await asyncio.shield(task)

    async def _read(self) -> None:
        try:
            ids = await self.provider.list_model_ids()
        except Exception as exc:  # any failure: keep what we had, say why, retry soon
            self.error = str(getattr(exc, "message", exc))
            self._fresh_until = time.monotonic() + min(FAILED_REFRESH_S, settings.EXAI_MODEL_REFRESH_S)
            logger.warning("could not read %s's model list: %s", self.provider.label, self.error)
            return
        self._specs = [model_spec(self.provider, model) for model in dict.fromkeys(ids)]
        self._preferred.clear()
        self.error = ""
        self._fresh_until = time.monotonic() + settings.EXAI_MODEL_REFRESH_S

    async def find(self, model: str, *, reread: bool = True) -> ModelSpec | None:
        """The listed model by that id; with `reread`, read the list again once if the cached one lacks it."""
        for spec in await self.current():
            if spec.name == model:
                return spec
        if not reread or time.monotonic() - self._last_miss_refresh < MISS_REFRESH_S:
            return None
        self._last_miss_refresh = time.monotonic()
        await self.refresh()
        return next((spec for spec in self.models() if spec.name == model), None)

    async def best(self, *, vision: bool = False) -> ModelSpec | None:
        """The model an alias means now, reading the list first when it is due."""
        await self.current()
        return self.preferred(vision=vision)

    def preferred(self, *, vision: bool = False) -> ModelSpec | None:
        """The configured default if listed, else the first by preference (no I/O)."""
        if vision not in self._preferred:
            self._preferred[vision] = self._choose(vision)
        return self._preferred[vision]

    def _choose(self, vision: bool) -> ModelSpec | None:
        specs = [spec for spec in self.models() if spec.vision or not vision]
        if not specs:
            return None
        override = self.provider.default_model_setting
        for spec in specs:
            if spec.name == override:
                return spec
        if override:
            logger.warning("%s does not list %r (its default model setting)", self.provider.label, override)
        # By preference; models no pattern names keep the order the provider lists them in.
        return min(enumerate(specs), key=lambda item: (self._rank(item[1]), item[0]))[1]

    def _rank(self, spec: ModelSpec) -> int:
        for rank, pattern in enumerate(self.provider.preference):
            if re.fullmatch(pattern, spec.name):
                return rank
        return len(self.provider.preference)

    def describe(self, model: str) -> str:
        """Advice for a model id the provider does not serve: what replaced it, and what is listed."""
        listed = ", ".join(spec.name for spec in self.models()) or "none"
        replacement = self.provider.retired.get(model)
        retired = f"{model} was retired by {self.provider.label}; use {replacement}. " if replacement else ""
        return f"{retired}{self.provider.label} lists: {listed}."
