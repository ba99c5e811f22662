// The official Ollama JavaScript client (npm "ollama", pinned in
// test/js/package-lock.json) doing ordinary work against one address.
// Prints one JSON object of what it got, with the fields that differ per
// answer (timestamps, durations) left out, so that two runs can be compared.
//   node client.mjs HOST
import { Ollama } from 'ollama';

// HOST may carry its scheme (https://...); AG_TOKEN, when set, goes as a Bearer token
const host = process.argv[2].includes('://') ? process.argv[2] : 'http://' + process.argv[2];
const client = new Ollama({ host, headers: process.env.AG_TOKEN ? { Authorization: 'Bearer ' + process.env.AG_TOKEN } : undefined });
const out = {};

// a streamed chat: every part's content, and the final part's counts
let text = '', parts = 0, final = null;
const stream = await client.chat({
  model: 'llama3.2', stream: true, options: { num_predict: 24 },
  messages: [{ role: 'user', content: 'why is the sky blue?' }],
});
for await (const part of stream) {
  parts++;
  text += part.message.content;
  if (part.done) final = { done_reason: part.done_reason, eval_count: part.eval_count, prompt_eval_count: part.prompt_eval_count };
}
out.chat = { text, parts, final };

// thinking: every part has a content (an empty one while thinking), as Ollama sends it
let ttext = '', tthink = '';
for await (const part of await client.chat({ model: 'qwen3:4b', think: true, stream: true, options: { num_predict: 8 },
                                            messages: [{ role: 'user', content: 'think first' }] })) {
  ttext += part.message.content;
  tthink += part.message.thinking ?? '';
}
const tw = await client.chat({ model: 'qwen3:4b', think: true, stream: false, options: { num_predict: 8 },
                               messages: [{ role: 'user', content: 'think first' }] });
out.think = { text: ttext, thinking: tthink, whole_text: tw.message.content, whole_thinking: tw.message.thinking };

// generate, whole
const g = await client.generate({ model: 'llama3.2', prompt: 'once upon a time', stream: false, options: { num_predict: 10 } });
out.generate = { response: g.response, done: g.done, eval_count: g.eval_count, context: g.context };

// a streamed generate
let gtext = '';
for await (const part of await client.generate({ model: 'qwen3:4b', prompt: 'stream me', stream: true, options: { num_predict: 8 } }))
  gtext += part.response;
out.generate_stream = gtext;

// embeddings
const e = await client.embed({ model: 'nomic-embed-text', input: ['first text', 'second text'] });
out.embed = { n: e.embeddings.length, dim: e.embeddings[0].length, sums: e.embeddings.map(v => v.reduce((a, b) => a + b, 0).toFixed(6)) };

// tags and show
const l = await client.list();
out.tags = l.models.map(m => ({ name: m.name, size: m.size, digest: m.digest, family: m.details.family }));
const s = await client.show({ model: 'llama3.2' });
out.show = { family: s.details.family, capabilities: s.capabilities };

// an error the way the client reports it
try {
  await client.chat({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] });
  out.missing = 'no error';
} catch (err) {
  out.missing = { status: err.status_code, message: err.message };
}
console.log(JSON.stringify(out, null, 1));
