"""The same streamed workload through three Python clients, CPU per token.

    python3 python_agents.py CLIENT HOST STREAMS CONCURRENCY [ORIGINAL_DIR]

CLIENT: cagents (this project's package, python/), original (the Python
package this project implements: ORIGINAL_DIR is a checkout of it, holding
agents/; not part of this repository) or aiohttp (a bare aiohttp NDJSON loop,
the floor for a Python asyncio client). Each runs STREAMS chat streams,
CONCURRENCY at a time, through ChatAgent.run (or the bare loop), counting
content pieces. Prints {"client", "tokens", "pieces", "cpu_s", "wall_s"}:
process CPU (user + sys, every thread, so the C engine's thread counts too).
"""

import asyncio
import json
import os
import resource
import sys
import time

client, host, n, conc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
MSG = [{"role": "user", "content": "peer benchmark"}]


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run_agent(agent):
    pieces = tokens = 0
    queue = list(range(n))

    async def worker():
        nonlocal pieces, tokens
        while queue:
            queue.pop()
            async for chunk in agent.run(MSG):
                if chunk.content:
                    pieces += 1
                if chunk.done:
                    tokens += chunk.metadata.get("eval_count", 0)

    await asyncio.gather(*[worker() for _ in range(conc)])
    return tokens, pieces


async def run_aiohttp():
    import aiohttp

    pieces = tokens = 0
    queue = list(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as s:
        async def worker():
            nonlocal pieces, tokens
            while queue:
                queue.pop()
                async with s.post(f"http://{host}/api/chat", json={"model": "llama3.2", "messages": MSG}) as r:
                    async for line in r.content:
                        if not line.strip():
                            continue
                        obj = json.loads(line)
                        if obj.get("message", {}).get("content"):
                            pieces += 1
                        if obj.get("done"):
                            tokens += obj.get("eval_count", 0)

        await asyncio.gather(*[worker() for _ in range(conc)])
    return tokens, pieces


# imports before the clock starts (aiohttp's alone costs more CPU than a run's
# tokens): what is measured is the streaming
import aiohttp  # noqa: E402,F401  (the original imports it on first use)

if client == "cagents":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
    import cagents as pkg
elif client == "original":
    sys.path.insert(0, sys.argv[5])
    import agents as pkg


async def main():
    if client == "aiohttp":
        return await run_aiohttp()
    c = pkg.LocalOllamaClient("llama3.2", f"http://{host}")
    try:
        return await run_agent(pkg.ChatAgent(c))
    finally:
        await c.close()


c0, w0 = cpu(), time.perf_counter()
tokens, pieces = asyncio.run(main())
print(json.dumps({"client": client, "tokens": tokens, "pieces": pieces, "cpu_s": round(cpu() - c0, 4),
                  "wall_s": round(time.perf_counter() - w0, 4)}))
