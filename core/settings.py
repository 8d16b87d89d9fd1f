"""Every setting the server reads from the environment, in one place (listed in the README)."""
from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    host: str = "0.0.0.0"
    port: int = 5000
    workers: int = 1
    # Addresses (comma-separated IPs or networks, "*" for any) whose X-Forwarded-For and
    # X-Forwarded-Proto are believed: the reverse proxy's (nginx). From any other peer those headers
    # are ignored, so the client IP in logs and rate limits cannot be forged.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    # Unset: an SQLite file in DATA_DIR. PostgreSQL: postgresql+psycopg://user@host/db
    database_url: str | None = None
    data_dir: Path = ROOT / "data"
    # Unset with SQLite: a random secret created once and kept in DATA_DIR/jwt-secret.
    jwt_secret: str | None = None
    jwt_ttl_seconds: int = 7 * 24 * 3600
    redis_url: str | None = None
    # Voice with REDIS_URL (realtime/): seconds between participant heartbeats (participants of a
    # process that stops renewing vanish after three missed beats), and the pub/sub channel the
    # processes of one deployment share (pub/sub ignores the Redis db number).
    voice_heartbeat_seconds: float = Field(default=5.0, gt=0)
    voice_redis_channel: str = Field(default="projectvoice", min_length=1)
    # Signalling speed (realtime/fastpath.py): python-socketio/engine.io's per-message work trimmed
    # (only on the pinned releases). Off: the libraries' own code, as shipped.
    socket_fastpath: bool = True
    cors_origins: str = "http://localhost:3000,http://localhost:3001"
    log_level: str = "info"
    db_pool_size: int = 10
    # Seconds a connection attempt may take, and a request waits for the pool to produce a
    # connection, before a database that does not answer is a 503 (database_unavailable).
    db_timeout: float = 2.0
    # Seconds a request queues for a pooled connection while all DB_POOL_SIZE are busy (overload,
    # not an outage); only past this wait is it a 503.
    db_pool_wait: float = 30.0
    # projectvoice/connexion_speedups.py: Connexion/Starlette per-request work done once. Off runs
    # the pinned releases exactly as published (the test suite runs both ways).
    connexion_speedups: bool = True
    # Tests turn this on: every response is checked against the OpenAPI document.
    validate_responses: bool = False

    # Limits (core/ratelimit.py, projectvoice/middleware.py). Rate limits use the `limits`
    # notation ("10/minute;100/hour"); counters live in Redis when REDIS_URL is set, so they hold
    # across processes, else in process memory. An empty string turns a limit off.
    rate_limits_enabled: bool = True
    rate_limit_strategy: str = "moving-window"  # or fixed-window, sliding-window-counter
    rate_limit_login_ip: str = "300/minute"
    rate_limit_login_account: str = "10/minute;100/hour"
    rate_limit_register_ip: str = "300/minute;3000/hour"
    rate_limit_message: str = "600/minute"  # per user and channel
    rate_limit_invite_accept: str = "30/minute"  # per user
    rate_limit_socket_join: str = "30/10second"  # per socket
    rate_limit_socket_signal: str = "600/10second"  # per socket
    max_body_bytes: int = 1024 * 1024
    # Request heads (projectvoice/middleware.py HeadLimits): over either limit the answer is 431.
    max_header_bytes: int = 32 * 1024  # names and values of all headers together
    max_header_count: int = 100

    # Operations (core/observability.py): one JSON line per request on the
    # "projectvoice.access" logger (at INFO), Prometheus text at /metrics.
    access_log: bool = True
    metrics_enabled: bool = True
    # When set, /metrics needs `Authorization: Bearer <METRICS_TOKEN>`.
    metrics_token: str | None = None
    # Diagnostics (core/diagnostics.py): an X-Query-Count header on every response with
    # the number of SQL statements the request ran. Off in production.
    query_count_header: bool = False

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def async_database_url(self) -> str:
        url = self.database_url
        if not url:
            return f"sqlite+aiosqlite:///{self.data_dir / 'projectvoice.db'}"
        for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix):]
        if url.startswith("sqlite://"):
            return "sqlite+aiosqlite://" + url[len("sqlite://"):]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.async_database_url.startswith("sqlite")

    def resolved_jwt_secret(self) -> str:
        if self.jwt_secret:
            return self.jwt_secret
        if not self.is_sqlite:
            raise RuntimeError(
                "JWT_SECRET must be set when DATABASE_URL points at PostgreSQL "
                "(several processes must share one secret)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "jwt-secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
