#!/usr/bin/env python3
"""An open-loop load generator written the way `vllm bench serve` drives a
server (asyncio, aiohttp, one task per request started on a Poisson
schedule, each stream read line by line and every line parsed as JSON), so
that `agents bench` can be compared with that style of client on the same
node: how late it sends against its schedule and what it costs in CPU.

    python3 openloop_aiohttp.py HOST:PORT MODEL RATE N [MAX_TOKENS]

Prints one JSON line: requests, ok, wall_s, cpu_s, cpu_us_per_request,
cpu_us_per_token, lag_ms_p50, lag_ms_p99, lag_ms_max, ttft_ms_p50.
"""
import asyncio
import json
import random
import resource
import sys
import time

import aiohttp


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pct(v, q):
    if not v:
        return 0.0
    v = sorted(v)
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


async def one(session, url, body, lags, ttfts, tokens, late):
    lags.append(late)
    t0 = time.perf_counter()
    first = None
    n = 0
    async with session.post(url, data=body) as resp:
        async for line in resp.content:
            if not line.strip():
                continue
            obj = json.loads(line)
            if obj.get("message", {}).get("content"):
                if first is None:
                    first = time.perf_counter()
                n += 1
    if first is not None:
        ttfts.append((first - t0) * 1e3)
    tokens.append(n)


async def main():
    host, model, rate, total = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    max_tokens = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    url = f"http://{host}/api/chat"
    rng = random.Random(42)
    lags, ttfts, tokens = [], [], []
    conn = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        tasks = []
        c0, t0 = cpu(), time.perf_counter()
        at = 0.0
        for i in range(total):
            body = {"model": model, "messages": [{"role": "user", "content": f"Why is the sky blue? ({i})"}]}
            if max_tokens:
                body["options"] = {"num_predict": max_tokens}
            delay = t0 + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            late = (time.perf_counter() - (t0 + at)) * 1e3
            tasks.append(asyncio.create_task(one(session, url, json.dumps(body), lags, ttfts, tokens, late)))
            at += rng.expovariate(rate)
        await asyncio.gather(*tasks, return_exceptions=True)
        wall, used = time.perf_counter() - t0, cpu() - c0
    ok = len(tokens)
    tok = sum(tokens)
    print(json.dumps({
        "requests": total, "ok": ok, "wall_s": round(wall, 3), "cpu_s": round(used, 3),
        "cpu_us_per_request": round(used / max(ok, 1) * 1e6, 1),
        "cpu_us_per_token": round(used / max(tok, 1) * 1e6, 2),
        "lag_ms_p50": round(pct(lags, 0.5), 3), "lag_ms_p99": round(pct(lags, 0.99), 3),
        "lag_ms_max": round(max(lags) if lags else 0, 3), "ttft_ms_p50": round(pct(ttfts, 0.5), 3),
    }))


if __name__ == "__main__":
    asyncio.run(main())
