"""The process's running Realtime (realtime/voice.py), set by realtime/server.py's build().

Its own module, importing nothing of ours, so the REST side's hooks and the presence lookups can
reach the running instance without importing the server that builds it (which imports them)."""
from __future__ import annotations

from typing import Any

_current: Any = None  # realtime.voice.Realtime, or None before build() and in REST-only tests


def current() -> Any:
    return _current


def set_current(rt: Any) -> None:
    global _current
    _current = rt
