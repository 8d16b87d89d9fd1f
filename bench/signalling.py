"""Signalling benchmark (not a test; `make bench` runs it after the REST rows).

The load is Node's socket.io-client 4 (bench/js/drive.mjs, websocket only), so the load generator
is not a Python process competing with the server for the interpreter. In alternating rounds
(each server gets one round in turn, --rounds times) it measures:

  ours      the product (`python -m projectvoice run`, default settings; SQLite, in-memory rooms,
            response validation off and rate limits off: the load sends far more than a person)
  py relay  a bare python-socketio relay (bench/relay_app.py) on the same ASGI server: the floor
            of the Python stack
  node      a bare Node socket.io relay (bench/js/relay.mjs), where node is installed: what a user
            would pick instead
  ours x2   two product processes sharing PostgreSQL and Redis (what WORKERS=2 runs), the sockets
            spread over both as a balancer would: half the pairs have their two ends in different
            processes (--no-cluster skips it)

Each round: 200 sockets connect, all join ONE voice room at once (join time: until every socket has
`created` and every `user-connected`), then 100 pairs ping-pong `signal` with one in flight for
--seconds. Printed per server (median round): relayed signals/s, round trip p50/p99, join time,
server CPU per relayed signal (utime+stime from /proc of the server's processes over the signalling
window), and the ratios to the Node relay and the Python relay of the same run.

    .venv/bin/python bench/signalling.py [--seconds 10] [--rounds 3] [--sockets 200] [--no-cluster]

Needs node and bench/js/node_modules (`make bench/js/node_modules`); the cluster row needs
PostgreSQL and Redis like `make test-postgres`.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import (Api, Database, ServerProcess, create_channel, create_pg_database,  # noqa: E402
                           create_server, free_port, join_server)

JS = ROOT / "bench" / "js"
NODE = shutil.which("node")
TICKS = os.sysconf("SC_CLK_TCK")
BENCH_REDIS = os.environ.get("PV_BENCH_REDIS", "redis://127.0.0.1:6379/11")  # flushed by the cluster row
# Flushed by the --ours-from cluster row (the tests use databases 0 and 12-14).
BENCH_REDIS_2 = os.environ.get("PV_BENCH_REDIS_2", "redis://127.0.0.1:6379/15")


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    return kids


def cpu_seconds(pids: list[int]) -> float:
    """utime+stime of these processes and all their descendants (workers of a server)."""
    kids = _children()
    todo, seen, total = list(pids), set(), 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(kids.get(pid, []))
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / TICKS


@dataclass
class Target:
    name: str
    urls: list[str]
    tokens: list[str]
    room: int | str
    pids: list[int]
    stop: list = field(default_factory=list)
    logs: list = field(default_factory=list)  # callables: a server's log tail, shown on failure
    rounds: list[dict] = field(default_factory=list)


def wait_http(url: str, proc: subprocess.Popen, log: Path) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start:\n{log.read_text()[-3000:]}")


def start_popen(cmd: list[str], env: dict, log: Path, probe: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    wait_http(probe, proc, log)
    return proc


def seed(api: Api) -> tuple[list[str], int]:
    owner, member = api.register(), api.register()
    sv = create_server(api, owner)
    join_server(api, owner, sv["id"], member)
    cid = create_channel(api, owner, sv["id"], type="voice")["id"]
    return [owner.token, member.token], cid


def start_ours(tmp: Path, root: Path = ROOT, name: str = "ours") -> Target:
    data = tmp / name.replace(" ", "-")
    proc = ServerProcess(database=Database(url=f"sqlite+aiosqlite:///{data}.db"), data_dir=data, root=root,
                         extra_env={"VALIDATE_RESPONSES": "0", "RATE_LIMITS_ENABLED": "0"}).start()
    tokens, cid = seed(Api(proc.base))
    t = Target(name, [proc.base], tokens, cid, [proc.proc.pid], [proc.stop])
    t.logs = [proc.log]
    return t


def start_cluster(tmp: Path, root: Path = ROOT, name: str = "ours x2") -> Target:
    import redis

    # The bench's own Redis database: room ids restart at 1 in each fresh PostgreSQL database, so
    # an earlier run's participant entries would otherwise meet this run's rooms.
    # A second cluster of the same run (--ours-from) gets a Redis database of its own: its room ids
    # are the same numbers.
    bench_redis = BENCH_REDIS if name == "ours x2" else BENCH_REDIS_2
    redis.Redis.from_url(bench_redis).flushdb()
    pg_name, url = create_pg_database()
    database = Database(url=url, pg_name=pg_name)
    secret = secrets.token_urlsafe(32)
    # DB_TIMEOUT 10 (default 2): 200 joins at once hold up to 20 pooled PostgreSQL connections per
    # process while the cores are busy with the join fan-out; at 2 s some joins answer an error.
    env = {"VALIDATE_RESPONSES": "0", "RATE_LIMITS_ENABLED": "0", "REDIS_URL": bench_redis,
           "VOICE_REDIS_CHANNEL": f"pv-bench-{secrets.token_hex(4)}", "DB_TIMEOUT": "10"}
    procs = []
    for i in range(2):  # one after the other: the first runs the migrations
        procs.append(ServerProcess(database=database, data_dir=tmp / f"{name.replace(' ', '-')}-{i}",
                                   jwt_secret=secret, extra_env=env, root=root).start())
    tokens, cid = seed(Api(procs[0].base))
    t = Target(name, [p.base for p in procs], tokens, cid, [p.proc.pid for p in procs],
               [p.stop for p in procs] + [database.drop])
    t.logs = [p.log for p in procs]
    return t


def relay_command(port: int, server: str | None = None) -> list[str]:
    """The bare Python relay on the ASGI server and settings the product serves sockets with, or
    under Granian (a comparison: `pip install granian` first)."""
    if server == "granian":
        return [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
                "--loop", "uvloop", "--log-level", "warning", "bench.relay_app:app"]
    from projectvoice.__main__ import socket_server_command

    return socket_server_command("bench.relay_app:app", "127.0.0.1", port)


def start_py_relay(tmp: Path, tuned: bool = False, server: str | None = None) -> Target:
    """The bare relay as python-socketio ships (tuned=False), or with the product's codec and fast
    path (tuned=True); on the product's ASGI server unless `server` names another (a comparison)."""
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if tuned:
        env.update(RELAY_JSON="orjson", RELAY_FASTPATH="1")
    proc = start_popen(relay_command(port, server), env, tmp / f"py-relay-{port}.log",
                       f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling")
    name = "py relay tuned" if tuned else "py relay"
    return Target(name + (f" ({server})" if server else ""), [f"http://127.0.0.1:{port}"], ["-"], 1,
                  [proc.pid], [proc.terminate])


def start_node_relay(tmp: Path) -> Target:
    port = free_port()
    proc = start_popen([NODE, str(JS / "relay.mjs"), str(port)], dict(os.environ), tmp / "node-relay.log",
                       f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling")
    return Target("node relay", [f"http://127.0.0.1:{port}"], ["-"], 1, [proc.pid], [proc.terminate])


def spread(urls: list[str], sockets: int) -> list[str]:
    """Socket i's server. Pair k is sockets 2k and 2k+1; with two servers the first end goes to
    k % 2 and the second to (k // 2) % 2: half the pairs stay in one process, half cross."""
    if len(urls) == 1:
        return urls
    return [urls[(i // 2) % 2] if i % 2 == 0 else urls[(i // 4) % 2] for i in range(sockets)]


def run_round(t: Target, sockets: int, seconds: float) -> dict:
    cfg = {"urls": spread(t.urls, sockets), "tokens": t.tokens, "room": t.room, "sockets": sockets,
           "seconds": seconds}
    drv = subprocess.Popen([NODE, str(JS / "drive.mjs"), json.dumps(cfg)], stdout=subprocess.PIPE, text=True)
    out: dict = {}
    cpu0 = None
    assert drv.stdout is not None
    for line in drv.stdout:
        msg = json.loads(line)
        if msg.get("failed"):
            drv.kill()
            tails = "\n".join(log() for log in t.logs)
            raise RuntimeError(f"{t.name}: {msg['failed']}\n{tails}")
        phase = msg.get("phase")
        if phase == "signal-start":
            cpu0 = cpu_seconds(t.pids)
        elif phase == "signal-end":
            cpu = cpu_seconds(t.pids) - (cpu0 or 0.0)
            out.update(rps=msg["relayed"] / msg["seconds"], p50=msg["p50"], p99=msg["p99"],
                       cpu_us=cpu / max(1, msg["relayed"]) * 1e6)
        elif phase == "joined":
            out["join"] = msg["joinSeconds"]
    if drv.wait(60) != 0 or "rps" not in out:
        raise RuntimeError(f"{t.name}: the driver failed ({out})")
    return out


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def idle_memory(t: Target, n: int) -> float:
    """KiB of server memory per idle socket (RSS before and after `n` sockets connect)."""
    time.sleep(1.0)
    before = rss_kib(t.pids[0])
    cfg = {"urls": t.urls, "tokens": t.tokens, "room": t.room, "sockets": n, "idle": True}
    drv = subprocess.Popen([NODE, str(JS / "drive.mjs"), json.dumps(cfg)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    assert drv.stdout is not None and drv.stdin is not None
    line = json.loads(drv.stdout.readline())
    if line.get("phase") != "connected":
        raise RuntimeError(f"idle sockets: {line}")
    time.sleep(2.0)
    after = rss_kib(t.pids[0])
    drv.stdin.close()
    drv.wait(60)
    return (after - before) / n


def median(rounds: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in rounds) for k in ("rps", "p50", "p99", "join", "cpu_us")}


def table(targets: list[Target], seconds: float, sockets: int) -> str:
    res = {t.name: median(t.rounds) for t in targets if t.rounds}
    rounds = max((len(t.rounds) for t in targets), default=0)
    by_name = {t.name: t for t in targets}
    node = res.get("node relay")
    py = res.get("py relay")
    lines = [f"Signalling: {sockets} sockets in ONE voice room, {sockets // 2} pairs ping-ponging `signal` "
             f"(one in flight), {seconds:g} s per round, median of {rounds} alternating rounds; "
             "load: Node socket.io-client 4 over websocket on the same machine, so the server and the load "
             f"generator share its {os.cpu_count()} cores (and with whatever else runs: load average "
             f"{os.getloadavg()[0]:.1f}). Ratios within one run and CPU per relayed signal are the figures to compare.",
             "| server | relayed/s | RTT p50 ms | RTT p99 ms | join s | CPU us/signal | "
             "relayed x node | p99 x node | join x node | relayed x py relay |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def ratio(a, b):
        return f"{a / b:.2f}" if b else "-"

    for name, r in res.items():
        n = len(by_name[name].rounds)
        label = name if n == rounds else f"{name} ({n} rounds)"
        lines.append(f"| {label} | {r['rps']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['join']:.2f} | "
                     f"{r['cpu_us']:.0f} | {ratio(r['rps'], node['rps']) if node else '-'} | "
                     f"{ratio(r['p99'], node['p99']) if node else '-'} | "
                     f"{ratio(r['join'], node['join']) if node else '-'} | "
                     f"{ratio(r['rps'], py['rps']) if py else '-'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sockets", type=int, default=200)
    ap.add_argument("--idle", type=int, default=1000, help="idle sockets for the memory figure (0: none)")
    ap.add_argument("--no-cluster", action="store_true", help="skip the two processes + Redis row")
    ap.add_argument("--relay-servers", help="also the tuned bare relay on these ASGI servers (granian)")
    ap.add_argument("--only", help="comma-separated: ours,py,py-tuned,node,cluster")
    ap.add_argument("--ours-from", action="append", default=[], metavar="TREE",
                    help="also ours as the checkout TREE has it (a row `ours (TREE's name)`, its rounds "
                         "alternating with the others): before and after a change in one run")
    args = ap.parse_args(argv)
    if NODE is None or not (JS / "node_modules").is_dir():
        sys.exit("bench/signalling.py needs node and bench/js/node_modules (make bench/js/node_modules)")
    only = set(args.only.split(",")) if args.only else {"ours", "py", "py-tuned", "node", "cluster"}
    if args.no_cluster:
        only.discard("cluster")
    targets: list[Target] = []
    idle = None
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            starters = [("ours", start_ours), ("py", start_py_relay),
                        ("py-tuned", lambda tmp: start_py_relay(tmp, tuned=True)), ("node", start_node_relay),
                        ("cluster", start_cluster)]
            for key, start in starters:
                if key in only:
                    targets.append(start(tmp))
            for tree in args.ours_from:
                path = Path(tree).resolve()
                targets.insert(0, start_ours(tmp, root=path, name=f"ours ({path.name})"))
                if "cluster" in only:
                    targets.append(start_cluster(tmp, root=path, name=f"ours x2 ({path.name})"))
            for server in filter(None, (args.relay_servers or "").split(",")):
                targets.append(start_py_relay(tmp, tuned=True, server=server))
            for i in range(args.rounds):
                for t in targets:
                    if t.name in failed:
                        continue
                    try:
                        r = run_round(t, args.sockets, args.seconds)
                    except RuntimeError as e:
                        failed[t.name] = str(e).splitlines()[0]
                        print(f"round {i + 1} {t.name}: FAILED {e}", flush=True)
                        continue
                    t.rounds.append(r)
                    print(f"round {i + 1} {t.name}: {r['rps']:,.0f} relayed/s, p50 {r['p50']:.1f} ms, "
                          f"p99 {r['p99']:.1f} ms, join {r['join']:.2f} s, {r['cpu_us']:.0f} us CPU/signal",
                          flush=True)
            ours = next((t for t in targets if t.name == "ours"), None)
            idle = idle_memory(ours, args.idle) if ours is not None and args.idle else None
        finally:
            for t in targets:
                for stop in t.stop:
                    try:
                        stop()
                    except Exception as e:  # noqa: BLE001
                        print(f"stopping {t.name}: {e}", file=sys.stderr)
    text = table(targets, args.seconds, args.sockets)
    for name, why in failed.items():
        text += f"\n{name}: failed in a round ({why}); its figures are from the rounds before, if any."
    if idle is not None:
        text += f"\n\nIdle sockets (ours): {idle:.1f} KiB of server memory each ({args.idle:,} sockets)."
    print()
    print(text)
    return text


if __name__ == "__main__":
    main()
