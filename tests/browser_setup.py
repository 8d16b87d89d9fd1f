"""What the browser tests (tests/test_browser.py) need: Debian's Chromium and Playwright for Python;
and what the deployment test (tests/test_nginx.py) needs: Debian's nginx.

`python tests/browser_setup.py` (or `make browser-deps`) installs all three; the tests call `ensure()`,
which installs what is missing when it can (root with apt-get, pip in this interpreter), and
otherwise says why the browser cannot run. Playwright never downloads a browser here: it drives
/usr/bin/chromium.
"""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys

CHROMIUM = os.environ.get("PV_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def _run(cmd: list[str], timeout: float = 900) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"{' '.join(cmd)}: {e}", file=sys.stderr)
        return False
    if r.returncode != 0:
        print(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}", file=sys.stderr)
    return r.returncode == 0


def _apt_install(package: str) -> bool:
    """`apt-get install <package>` (with `apt-get update` first only when the package is unknown)."""
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return False
    if not _run([apt, "install", "-y", "--no-install-recommends", package]):
        _run([apt, "update"])
        return _run([apt, "install", "-y", "--no-install-recommends", package])
    return True


def install_chromium() -> bool:
    if os.path.exists(CHROMIUM):
        return True
    _apt_install("chromium")
    return os.path.exists(CHROMIUM)


def nginx_exe() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                          if os.access(p, os.X_OK)), None)


def ensure_nginx() -> str | None:
    """nginx's path, installed first when missing and possible (root with apt-get), else None.
    Debian's package starts a system nginx on port 80; the tests run their own, so it is stopped."""
    exe = nginx_exe()
    if exe is None and os.environ.get("PV_BROWSER_INSTALL", "1") != "0" and _apt_install("nginx"):
        exe = nginx_exe()
        if exe is not None and shutil.which("service"):
            _run(["service", "nginx", "stop"], timeout=60)
    return exe


def install_playwright() -> bool:
    try:
        importlib.import_module("playwright.sync_api")
        return True
    except ImportError:
        pass
    if not _run([sys.executable, "-m", "pip", "install", "-q", "playwright"]):
        return False
    importlib.invalidate_caches()
    try:
        importlib.import_module("playwright.sync_api")
        return True
    except ImportError:
        return False


def ensure() -> str | None:
    """None when the browser tests can run, else the reason they cannot."""
    if os.environ.get("PV_BROWSER_INSTALL", "1") != "0":
        install_chromium()
        install_playwright()
    if not os.path.exists(CHROMIUM):
        return (f"Chromium is not installed at {CHROMIUM} and could not be installed here (needs root and "
                "apt-get): run `apt-get install chromium` or `python tests/browser_setup.py`")
    try:
        importlib.import_module("playwright.sync_api")
    except ImportError:
        return "Playwright for Python is not installed and pip could not install it: pip install playwright"
    return None


if __name__ == "__main__":
    reason = ensure()
    if reason:
        sys.exit(reason)
    print(f"browser tests ready: {CHROMIUM}")
    nginx = ensure_nginx()
    if nginx is None:
        sys.exit("nginx is not installed and could not be installed here (needs root and apt-get)")
    print(f"nginx test ready: {nginx}")
