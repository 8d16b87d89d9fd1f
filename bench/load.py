"""Load generator for bench/run_all.py (not a test): one endpoint, N concurrent keep-alive
connections on loopback, for a fixed time after a short warm-up; prints one JSON line with
requests/s, p50, p99 (ms) and errors (non-2xx answers and failed requests).

    .venv/bin/python bench/load.py --base http://127.0.0.1:5000 --spec '<json>' [--seconds 5] [--concurrency 64]

spec: {"method": "GET", "path": "/api/servers", "params": {...}, "json": {...}, "tokens": [...]}
Worker i uses tokens[i % len(tokens)]; a "{n}" in a JSON body's strings becomes a counter.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp


async def run(base: str, spec: dict, seconds: float, concurrency: int, warmup: float) -> dict:
    tokens = spec["tokens"]
    method, path = spec["method"], spec["path"]
    params = spec.get("params")
    body = spec.get("json")
    latencies: list[float] = []
    errors = 0
    counter = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)

    async with aiohttp.ClientSession(base, connector=connector) as session:
        async def worker(i: int) -> None:
            nonlocal errors, counter
            headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                kw = {}
                if body is not None:
                    counter += 1
                    kw["json"] = {k: (v.replace("{n}", str(counter)) if isinstance(v, str) else v)
                                  for k, v in body.items()}
                ok = False
                try:
                    async with session.request(method, path, params=params, headers=headers, **kw) as r:
                        await r.read()
                        ok = 200 <= r.status < 300
                except aiohttp.ClientError:
                    pass
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop_at:
                    latencies.append(t1 - t0)
                    if not ok:
                        errors += 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    latencies.sort()
    n = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(n - 1, int(n * p))] * 1000 if n else float("nan")

    return {"requests": n, "rps": n / seconds, "p50": pct(0.50), "p99": pct(0.99), "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args.base, json.loads(args.spec), args.seconds, args.concurrency, args.warmup))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
