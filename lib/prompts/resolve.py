"""A prompt name plus a label or version -> the version to run, without a database read per request.

Resolved labels are kept per process for PROMPT_CACHE_TTL_S seconds (default 5), so a label move
reaches every instance within that bound; `0` reads the database every time. A version named by
its number never changes, so once found it stays cached. Experiments (lib/experiments) keep their
definitions in the same kind of cache.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from lib.config import Settings
from lib.prompts.templates import PromptVersion

MAX_ENTRIES = 2048


class TtlCache:
    """Values kept for a while per key, in this process only. `ttl_s=None` keeps a value until it
    is pushed out by newer ones (for values that never change)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    async def get(self, key: Hashable, ttl_s: float | None, load: Callable[[], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = await load()
        if ttl_s is None or ttl_s > 0:
            self._remember(key, now + ttl_s if ttl_s is not None else float("inf"), value)
        return value

    def _remember(self, key: Hashable, expires: float, value: Any) -> None:
        self._entries.pop(key, None)
        if len(self._entries) >= self.max_entries:
            now = time.monotonic()
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            for stale in list(self._entries)[: max(0, len(self._entries) - self.max_entries // 2)]:
                del self._entries[stale]
        self._entries[key] = (expires, value)

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


_versions = TtlCache()


async def resolve_prompt(settings: Settings, name: str, *, label: str | None = None,
                         version: int | None = None) -> PromptVersion | None:
    """The version of `name` with that number, or that label (`latest`: the newest); None when
    there is no such prompt, version or label."""
    from lib import db  # not at the top: ai_execute imports this module, and most requests need no prompt
    from lib.prompts.store import read_version

    async def load() -> PromptVersion | None:
        async with db.connect(settings) as conn:
            return await read_version(conn, name, label=label, version=version)

    key = (settings.database_url, name, label, version)
    if version is not None:  # immutable once it exists; absent ones are looked up again
        found = await _versions.get(key, None, load)
        if found is None:
            _versions.forget(key)
        return found
    return await _versions.get(key, settings.prompt_cache_ttl_s, load)


def forget_prompts() -> None:
    """Drop every cached resolution (tests, and the CLI after it moves a label)."""
    _versions.clear()
