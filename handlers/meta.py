"""Service information: /info, /test, /health."""
from __future__ import annotations

from generated import rest
from models import db

APP_NAME = "ProjectVoice"
VERSION = "0.1.0"

# Discord's palette, which the desktop client themes itself with.
STYLES: rest.Styles = {
    "blurple": "#5865F2",
    "green": "#57F287",
    "yellow": "#FEE75C",
    "fuchsia": "#EB459E",
    "red": "#ED4245",
    "white": "#FFFFFF",
    "black": "#000000",
    "grey": "#99AAB5",
    "darkGrey": "#2C2F33",
    "darkerGrey": "#23272A",
}


async def info() -> tuple[rest.Info, int]:
    return {"status": "ok", "app": APP_NAME, "version": VERSION, "styles": STYLES}, 200


async def test() -> tuple[rest.MessageResponse, int]:
    return {"message": "ProjectVoice API is working"}, 200


async def health() -> tuple[rest.Health, int]:
    if await db.ping():
        return {"status": "ok", "database": "ok"}, 200
    return {"status": "degraded", "database": "unavailable"}, 503
