"""A Python client in the style most Ollama tooling uses: aiohttp streaming
/api/chat, each NDJSON line decoded with json.loads.
    python3 aiohttp_client.py HOST MODE N CONCURRENCY     MODE: chat | embed | latency
Prints: tokens (or embeddings) received, and the median TTFT in ms."""
import asyncio, json, sys, time

import aiohttp

host, mode, n, conc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
base = "http://" + host
count = 0
ttfts = []


async def one(session, i):
    global count
    if mode == "embed":
        async with session.post(base + "/api/embed", json={"model": "nomic-embed-text", "input": "embedding text %d" % (i % 7)}) as r:
            count += len((await r.json())["embeddings"])
        return
    t0 = time.perf_counter()
    first = True
    async with session.post(base + "/api/chat", json={"model": "llama3.2", "stream": True,
                                                      "messages": [{"role": "user", "content": "peer benchmark"}]}) as r:
        async for line in r.content:
            if not line.strip():
                continue
            obj = json.loads(line)
            if obj.get("message", {}).get("content"):
                if first:
                    ttfts.append((time.perf_counter() - t0) * 1000)
                    first = False
                count += 1


async def main():
    queue = list(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as session:
        async def worker():
            while queue:
                await one(session, queue.pop())
        await asyncio.gather(*[worker() for _ in range(conc)])


asyncio.run(main())
ttfts.sort()
print(json.dumps({"count": count, "ttft_p50_ms": ttfts[len(ttfts) // 2] if ttfts else None}))
