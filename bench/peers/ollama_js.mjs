// The official Ollama JavaScript client (npm "ollama", pinned in package.json),
// driving the same workload as the other peers.
//   node ollama_js.mjs HOST MODE N CONCURRENCY     MODE: chat | embed | latency
// Prints: tokens (or embeddings) received, and for latency the median TTFT in ms.
import { Ollama } from 'ollama';

const [host, mode, nArg, concArg] = process.argv.slice(2);
const n = Number(nArg), conc = Number(concArg);
const client = new Ollama({ host: 'http://' + host });
let count = 0, next = 0;
const ttfts = [];

async function one(i) {
  if (mode === 'embed') {
    const r = await client.embed({ model: 'nomic-embed-text', input: 'embedding text ' + (i % 7) });
    count += r.embeddings.length;
    return;
  }
  const t0 = performance.now();
  let first = true;
  const stream = await client.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'peer benchmark' }], stream: true });
  for await (const part of stream) {
    if (part.message && part.message.content) {
      if (first) { ttfts.push(performance.now() - t0); first = false; }
      count++;
    }
  }
}

async function worker() {
  while (next < n) { const i = next++; await one(i); }
}

await Promise.all(Array.from({ length: conc }, worker));
ttfts.sort((a, b) => a - b);
console.log(JSON.stringify({ count, ttft_p50_ms: ttfts.length ? ttfts[Math.floor(ttfts.length / 2)] : null }));
