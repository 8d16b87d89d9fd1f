"""The benchmark suite (`make bench`; not a test). Compare figures as ratios within one run: the
machines are shared and noisy.

1. A fresh PostgreSQL database; the server (`python -m projectvoice run`: uvloop, httptools, one
   worker, default settings) with JWT_SECRET set, response validation off (its production
   default) and RATE_LIMITS_ENABLED=0 (the workload posts far more than a person may).
2. Seeded through the API: 16 users, a server they all belong to, two text and two voice
   channels; then 10,000 messages bulk-inserted into one text channel (bench/messages_scale.py's
   loader: the channel counter is kept by the production triggers, indexes rebuilt, ANALYZE).
3. The floor (bench/floor_app.py, NOT part of the product): a bare Starlette app on the same
   uvicorn settings and psycopg driver answering the same requests with hand-written SQL.
4. For each endpoint, --rounds times in turn the product then the floor: wrk from Debian
   (bench/wrk.lua; bench/load.py, an async Python generator, where wrk is missing) in a separate
   process, 64 concurrent keep-alive connections on loopback, 1 s warm-up then --seconds
   measured. The table shows each side's median round: taking turns spreads the machine's
   noise over both.
5. The overload row (issue 17): search and message page driven at once, --concurrency
   connections each, for --overload-seconds (10), product only, default pool settings; every
   answer must be 2xx (a full pool queues, DB_POOL_WAIT; it is not an outage).
6. The signalling table: bench/signalling.py (its own servers; load by Node's socket.io-client,
   against a bare python-socketio relay and a bare Node socket.io relay in alternating rounds).
7. The presence line: bench/presence.py (its own SQLite server): a user in 10 servers of 1,000
   members connecting against a user in one server of 2, alternating rounds (short).

    .venv/bin/python bench/run_all.py [--seconds 5] [--rounds 3] [--concurrency 64] [--no-signalling]
                                      [--signalling-seconds 10] [--signalling-rounds 3]
                                      [--overload-seconds 10] [--no-overload] [--no-presence]

Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust), like `make test-postgres`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.messages_scale import RARE, load  # noqa: E402
from tests.support import (Api, Database, ServerProcess, create_channel, create_pg_database,  # noqa: E402
                           create_server, free_port, join_server)

PY = sys.executable


def seed(api: Api, database: Database, messages: int) -> dict:
    users = [api.register() for _ in range(16)]
    owner = users[0]
    sv = create_server(api, owner)
    join_server(api, owner, sv["id"], *users[1:])
    read = create_channel(api, owner, sv["id"], "text", "general")["id"]
    post = create_channel(api, owner, sv["id"], "text", "posting")["id"]
    for name in ("lobby", "music"):
        create_channel(api, owner, sv["id"], "voice", name)
    load(database, {"small": (read, messages)}, [u.id for u in users])
    return {"tokens": [u.token for u in users], "server": sv["id"], "read": read, "post": post}


def workload(s: dict) -> list[tuple[str, dict]]:
    t = s["tokens"]
    return [
        ("GET /api/servers", {"method": "GET", "path": "/api/servers", "tokens": t}),
        ("GET /api/messages page 1", {"method": "GET", "path": "/api/messages", "tokens": t,
                                      "params": {"channelId": s["read"], "page": 1, "limit": 50}}),
        ("POST /api/messages", {"method": "POST", "path": "/api/messages", "tokens": t,
                                "json": {"channelId": s["post"], "content": "bench message {n}"}}),
        ("GET /api/messages/search", {"method": "GET", "path": "/api/messages/search", "tokens": t,
                                      "params": {"channelId": s["read"], "query": RARE["small"],
                                                 "page": 1, "limit": 50}}),
        ("GET /api/servers/:id", {"method": "GET", "path": f"/api/servers/{s['server']}", "tokens": t}),
    ]


def start_floor(database: Database, secret: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database.url, JWT_SECRET=secret)
    proc = subprocess.Popen([PY, "-m", "uvicorn", "bench.floor_app:app", "--host", "127.0.0.1",
                             "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                             "--log-level", "warning", "--no-access-log"],
                            cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(log.read_text())


WRK = shutil.which("wrk")


def _wrk(url: str, env: dict, seconds: float, concurrency: int) -> dict:
    r = subprocess.run([WRK, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
                        "-s", str(ROOT / "bench" / "wrk.lua"), url],
                       capture_output=True, text=True, timeout=seconds + 120, env=env)
    if r.returncode != 0:
        raise RuntimeError(r.stderr or r.stdout)
    return json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])


def drive(base: str, spec: dict, seconds: float, concurrency: int) -> dict:
    if WRK is None:
        r = subprocess.run([PY, str(ROOT / "bench" / "load.py"), "--base", base, "--spec", json.dumps(spec),
                            "--seconds", str(seconds), "--concurrency", str(concurrency)],
                           capture_output=True, text=True, timeout=seconds + 120)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        return json.loads(r.stdout.strip().splitlines()[-1])
    url = base + spec["path"] + ("?" + urlencode(spec["params"]) if spec.get("params") else "")
    env = dict(os.environ, PV_METHOD=spec["method"], PV_TOKENS=",".join(spec["tokens"]),
               PV_BODY=json.dumps(spec["json"]) if spec.get("json") else "")
    _wrk(url, env, 1, concurrency)  # warm-up
    return _wrk(url, env, seconds, concurrency)


def median_round(rounds: list[dict]) -> dict:
    """Each figure's median over the rounds; errors summed."""
    return {"rps": statistics.median(r["rps"] for r in rounds), "p50": statistics.median(r["p50"] for r in rounds),
            "p99": statistics.median(r["p99"] for r in rounds), "errors": sum(r["errors"] for r in rounds)}


def check_same_answers(product: str, floor: str, spec: dict) -> None:
    """The floor must answer the same thing (GETs only), or the comparison means nothing."""
    if spec["method"] != "GET":
        return
    h = {"Authorization": f"Bearer {spec['tokens'][1]}"}
    a = httpx.get(product + spec["path"], params=spec.get("params"), headers=h, timeout=30)
    b = httpx.get(floor + spec["path"], params=spec.get("params"), headers=h, timeout=30)
    assert a.status_code == b.status_code == 200, (a.text[:300], b.text[:300])
    where = first_difference(a.json(), b.json())
    assert where is None, f"floor answers differ for {spec['path']} at {where}"


def first_difference(a, b, path: str = "") -> str | None:
    """Where two JSON values first differ (a path and both values), None when equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}.{key}: only in the {'product' if key in a else 'floor'}"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items in the product, {len(b)} in the floor"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: product {a!r}, floor {b!r}"


def signalling(seconds: float, rounds: int) -> str:
    """bench/signalling.py's table (its own servers; Node relay and Python relay as yardsticks)."""
    if not shutil.which("node") or not (ROOT / "bench" / "js" / "node_modules").is_dir():
        return "signalling: skipped (needs node and bench/js/node_modules: make bench/js/node_modules)"
    r = subprocess.run([PY, str(ROOT / "bench" / "signalling.py"), "--seconds", str(seconds), "--rounds",
                        str(rounds)], capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        return f"signalling: failed (exit {r.returncode})\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout.split("\n\n", 1)[-1].strip()


def presence() -> str:
    """bench/presence.py's result line (connecting in 10 servers of 1,000 members vs 1 of 2)."""
    r = subprocess.run([PY, str(ROOT / "bench" / "presence.py"), "--rounds", "20"], capture_output=True,
                       text=True, timeout=900, env=dict(os.environ, PV_TEST_DB="sqlite"))
    lines = [line for line in r.stdout.splitlines() if line.startswith("presence connect")]
    return lines[-1] if lines and r.returncode == 0 else f"presence bench failed (exit {r.returncode}): {r.stderr[-500:]}"


def overload(base: str, s: dict, seconds: float, concurrency: int) -> dict:
    """Search and page at once, `concurrency` connections each; summed req/s and errors."""
    from concurrent.futures import ThreadPoolExecutor

    specs = [spec for label, spec in workload(s) if label in ("GET /api/messages/search", "GET /api/messages page 1")]
    with ThreadPoolExecutor(len(specs)) as pool:
        results = list(pool.map(lambda spec: drive(base, spec, seconds, concurrency), specs))
    return {"rps": sum(r["rps"] for r in results), "p50": max(r["p50"] for r in results),
            "p99": max(r["p99"] for r in results), "errors": sum(r["errors"] for r in results)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="product/floor turns per endpoint (median shown)")
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--log-level", default="info", help="the product's LOG_LEVEL (info: access log on, the default)")
    ap.add_argument("--no-signalling", action="store_true")
    ap.add_argument("--no-presence", action="store_true")
    ap.add_argument("--signalling-seconds", type=float, default=10.0)
    ap.add_argument("--signalling-rounds", type=int, default=3)
    ap.add_argument("--overload-seconds", type=float, default=10.0)
    ap.add_argument("--no-overload", action="store_true")
    ap.add_argument("--only", help="run only endpoints whose name contains this")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        name, url = create_pg_database()
        database = Database(url=url, pg_name=name)
        product = ServerProcess(database=database, data_dir=tmp / "data", extra_env={
            "VALIDATE_RESPONSES": "0", "RATE_LIMITS_ENABLED": "0", "LOG_LEVEL": args.log_level})
        floor = None
        rows = []
        over = None
        try:
            product.start()
            print(f"product server pid {product.proc.pid} on {product.base} (PostgreSQL {name})", flush=True)
            s = seed(Api(product.base), database, args.messages)
            floor, floor_base = start_floor(database, product.jwt_secret, tmp / "floor.log")
            print(f"floor app pid {floor.pid} on {floor_base}", flush=True)
            for label, spec in workload(s):
                if args.only and args.only not in label:
                    continue
                check_same_answers(product.base, floor_base, spec)
                ours_rounds, floor_rounds = [], []
                for _ in range(args.rounds):
                    ours_rounds.append(drive(product.base, spec, args.seconds, args.concurrency))
                    floor_rounds.append(drive(floor_base, spec, args.seconds, args.concurrency))
                ours, base = median_round(ours_rounds), median_round(floor_rounds)
                rows.append((label, ours, base))
                print(f"  {label}: ours {ours['rps']:.0f} req/s, floor {base['rps']:.0f} req/s", flush=True)
            if not args.no_overload:
                over = overload(product.base, s, args.overload_seconds, args.concurrency)
                print(f"  overload: {over['rps']:.0f} req/s, {over['errors']} errors", flush=True)
        finally:
            if floor is not None:
                floor.terminate()
                floor.wait(15)
            product.stop()
            database.drop()

    sig = None if args.no_signalling else signalling(args.signalling_seconds, args.signalling_rounds)
    pres = None if args.no_presence else presence()
    print()
    print(f"{args.concurrency} connections, {args.seconds:g} s per round, median of {args.rounds} rounds, "
          f"load by {'wrk' if WRK else 'bench/load.py'}, PostgreSQL, one worker; "
          f"ratio = ours / floor (req/s; p99 floor / ours would be the inverse)")
    head = (f"| {'endpoint':<26} | {'req/s':>7} | {'p50 ms':>7} | {'p99 ms':>7} | {'errors':>6} | "
            f"{'floor req/s':>11} | {'floor p50':>9} | {'floor p99':>9} | {'floor err':>9} | "
            f"{'req/s ratio':>11} | {'p99 x floor':>11} |")
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for label, o, b in rows:
        print(f"| {label:<26} | {o['rps']:>7.0f} | {o['p50']:>7.1f} | {o['p99']:>7.1f} | {o['errors']:>6} | "
              f"{b['rps']:>11.0f} | {b['p50']:>9.1f} | {b['p99']:>9.1f} | {b['errors']:>9} | "
              f"{o['rps'] / b['rps']:>11.2f} | {o['p99'] / b['p99']:>11.2f} |")
    if over:
        label = f"overload search+page {args.concurrency}x2"
        print(f"| {label:<26} | {over['rps']:>7.0f} | {over['p50']:>7.1f} | {over['p99']:>7.1f} | "
              f"{over['errors']:>6} | {'-':>11} | {'-':>9} | {'-':>9} | {'-':>9} | {'-':>11} | {'-':>11} |")
    if sig:
        print()
        print(sig)
    if pres:
        print(f"\n{pres}")


if __name__ == "__main__":
    main()
