"""Rate limits on top of the `limits` library, shared by REST (projectvoice/middleware.py) and
the Socket.IO side.

    from core.ratelimit import limiter
    retry_after = await limiter.hit("signal", sid)      # None: allowed; else seconds to wait

Names and their settings: "login_ip", "login_account", "register_ip", "message" (key: user id
and channel id), "invite_accept" (user id), "join_room" and "signal" (socket id). Counters live
in Redis when REDIS_URL is set, so limits hold across processes; otherwise in process memory.
The per-socket limits ("join_room", "signal") are always counted in process memory: a socket
lives in one process, so its counter needs no sharing, and a Redis round trip per signal was
most of what a limited signal cost with REDIS_URL.
If the storage fails (Redis down), requests are let through: an outage of the limiter's storage
must not become an outage of the service.
"""
from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse_many
from limits.aio import strategies
from limits.aio.storage import MemoryStorage, RedisStorage, Storage

from core.settings import Settings, get_settings

log = logging.getLogger("projectvoice.ratelimit")

# limit name -> Settings attribute holding its "N/period;..." string
LIMIT_SETTINGS = {
    "login_ip": "rate_limit_login_ip",
    "login_account": "rate_limit_login_account",
    "register_ip": "rate_limit_register_ip",
    "message": "rate_limit_message",
    "invite_accept": "rate_limit_invite_accept",
    "join_room": "rate_limit_socket_join",
    "signal": "rate_limit_socket_signal",
}
_STRATEGIES: dict[str, type[strategies.FixedWindowRateLimiter | strategies.MovingWindowRateLimiter
                            | strategies.SlidingWindowCounterRateLimiter]] = {
    "moving-window": strategies.MovingWindowRateLimiter,
    "fixed-window": strategies.FixedWindowRateLimiter,
    "sliding-window-counter": strategies.SlidingWindowCounterRateLimiter,
}
# Keyed by a socket id: a socket lives in one process, so these are counted in its memory.
PER_SOCKET = frozenset({"join_room", "signal"})
# After a storage failure, skip the storage for this long instead of waiting on it per request.
_STORAGE_BACKOFF = 5.0


class Limiter:
    def __init__(self, settings: Settings | None = None):
        self._settings = settings
        self._configured = False
        self._limits: dict[str, list[RateLimitItem]] = {}
        self._strategy: strategies.RateLimiter | None = None
        self._storage: Storage | None = None
        self._local: strategies.RateLimiter | None = None  # PER_SOCKET names
        self._local_storage: Storage | None = None
        self._down_until = 0.0

    def configure(self, settings: Settings | None = None) -> Limiter:
        settings = settings or self._settings or get_settings()
        self._settings = settings
        self._limits = {}
        if settings.rate_limits_enabled:
            for name, attr in LIMIT_SETTINGS.items():
                value = (getattr(settings, attr) or "").strip()
                if value:
                    self._limits[name] = parse_many(value)
        if settings.redis_url:
            url = settings.redis_url
            if not url.startswith("async+"):
                url = "async+" + url
            self._storage = RedisStorage(url, implementation="redispy", key_prefix="pv-limits",
                                         socket_timeout=0.5, socket_connect_timeout=0.5)
        else:
            self._storage = MemoryStorage()
        strategy = _STRATEGIES.get(settings.rate_limit_strategy)
        if strategy is None:
            raise ValueError(f"RATE_LIMIT_STRATEGY must be one of {', '.join(_STRATEGIES)}")
        self._strategy = strategy(self._storage)
        self._local_storage = self._storage if isinstance(self._storage, MemoryStorage) else MemoryStorage()
        self._local = strategy(self._local_storage)
        self._down_until = 0.0
        self._configured = True
        return self

    def enabled(self, name: str) -> bool:
        if not self._configured:
            self.configure()
        return name in self._limits

    async def hit(self, name: str, *key: object) -> int | None:
        """Count one event for `name` and `key`. None when allowed, else seconds until allowed
        again (at least 1). Unknown or disabled names are never limited."""
        if not self._configured:
            self.configure()
        items = self._limits.get(name)
        if not items:
            return None
        ident = [name, *(str(k) for k in key)]
        if name in PER_SOCKET:
            assert self._local is not None
            return await self._hit(self._local, items, ident)
        now = time.monotonic()
        if now < self._down_until:
            return None
        assert self._strategy is not None
        try:
            return await self._hit(self._strategy, items, ident)
        except Exception as exc:  # storage unreachable: fail open, retry the storage later
            self._down_until = now + _STORAGE_BACKOFF
            log.warning("rate-limit storage unavailable, limits not enforced for %ss: %r",
                        _STORAGE_BACKOFF, exc)
        return None

    @staticmethod
    async def _hit(strategy: strategies.RateLimiter, items: list[RateLimitItem], ident: list[str]) -> int | None:
        for item in items:
            if not await strategy.hit(item, *ident):
                stats = await strategy.get_window_stats(item, *ident)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None

    async def reset(self) -> None:
        storages = [self._storage, self._local_storage]
        for storage in [s for i, s in enumerate(storages) if s is not None and s not in storages[:i]]:
            try:
                await storage.reset()
            except Exception:
                pass


limiter = Limiter()
