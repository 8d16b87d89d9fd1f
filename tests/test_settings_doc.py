"""Every setting of core/settings.py is in the README's settings table, with its default."""
from __future__ import annotations

import re
from pathlib import Path

from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Settings (environment variables)", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", table, re.M))
    missing = {name.upper() for name in Settings.model_fields} - documented
    assert not missing, f"settings missing from the README table: {sorted(missing)}"


def test_voice_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("VOICE_HEARTBEAT_SECONDS", "1.5")
    monkeypatch.setenv("VOICE_REDIS_CHANNEL", "pv-elsewhere")
    s = Settings()
    assert s.voice_heartbeat_seconds == 1.5 and s.voice_redis_channel == "pv-elsewhere"
    monkeypatch.delenv("VOICE_HEARTBEAT_SECONDS")
    monkeypatch.delenv("VOICE_REDIS_CHANNEL")
    s = Settings()
    assert s.voice_heartbeat_seconds == 5.0 and s.voice_redis_channel == "projectvoice"
