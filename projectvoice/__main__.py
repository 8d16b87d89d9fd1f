"""Command line: `python -m projectvoice run` serves the API; `create-admin` makes a global admin."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

import uvicorn

from core.settings import get_settings
from models import auth, db
from projectvoice.middleware import WebSocketProtocol


def socket_server_command(app: str, host: str, port: int) -> list[str]:
    """The command that serves an ASGI app the way `run` serves the product (bench/signalling.py
    starts its bare python-socketio relay with it)."""
    return [sys.executable, "-m", "uvicorn", app, "--host", host, "--port", str(port), "--loop", "uvloop",
            "--http", "httptools", "--log-level", "warning", "--ws-per-message-deflate", "false"]


def _run(_args: argparse.Namespace) -> None:

    settings = get_settings()
    settings.resolved_jwt_secret()  # refuse to start without a secret on PostgreSQL
    if settings.workers > 1 and settings.is_sqlite:
        sys.exit("WORKERS > 1 needs DATABASE_URL (PostgreSQL) and REDIS_URL")
    uvicorn.run(
        "projectvoice.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=10,
        # Signalling messages are small JSON: compressing each costs more CPU than it saves
        # (Node's socket.io leaves permessage-deflate off by default too).
        ws_per_message_deflate=False,
        ws=WebSocketProtocol,  # uvicorn's default, answering the heads it cannot parse
    )


async def _create_admin(username: str, email: str, password: str) -> str:
    db.init()
    await db.migrate()
    hashed = await auth.hash_password(password)
    try:
        async with db.session() as s:
            existing = await auth.find_by_email(s, email)
            if existing is not None:
                await auth.make_admin(s, existing, hashed)  # the old password's sessions all end
                return f"promoted existing user {existing.username} (id {existing.id}) to admin"
            user = await auth.create_user(s, username, email, hashed, role="admin")
            if user is None:
                sys.exit("username already taken by another account")
            return f"created admin {user.username} (id {user.id})"
    finally:
        await db.dispose()


def _admin(args: argparse.Namespace) -> None:
    username = args.username or os.environ.get("ADMIN_USERNAME")
    email = args.email or os.environ.get("ADMIN_EMAIL")
    password = args.password or os.environ.get("ADMIN_PASSWORD")
    if not (username and email and password):
        sys.exit("create-admin needs --username, --email and --password "
                 "(or ADMIN_USERNAME, ADMIN_EMAIL, ADMIN_PASSWORD)")
    if not 8 <= len(password) <= 128:
        sys.exit("password must be 8 to 128 characters")
    if not 3 <= len(username) <= 32:
        sys.exit("username must be 3 to 32 characters")
    print(asyncio.run(_create_admin(username, email, password)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m projectvoice")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="serve the API and Socket.IO (PORT, WORKERS, DATABASE_URL...)").set_defaults(fn=_run)
    p = sub.add_parser("create-admin", help="create (or promote) a global admin account")
    p.add_argument("--username")
    p.add_argument("--email")
    p.add_argument("--password")
    p.set_defaults(fn=_admin)
    args = parser.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
